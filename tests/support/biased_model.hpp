#pragma once
// A checkpoint with biases on its linear layers, for the code paths Qwen-style models take (the
// shared models have none). Only the tests that link crepe_io use it.
#include <string>

#include "test_support.hpp"

namespace crepe::test {

// A copy of the model directory `source` in dir/name with a bias on every linear layer
// (config.json's attention_bias and mlp_bias set; values 0.1 x standard normal, seeded, in the
// weights' dtype). Returns its path.
std::string make_biased_copy(const TempDir& dir, const std::string& source, const std::string& name = "biased");

}  // namespace crepe::test
