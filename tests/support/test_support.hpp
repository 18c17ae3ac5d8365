#pragma once
// Helpers shared by crepe's tests: where the shared data lives, scratch directories, running the
// crepe binary as a user would, expected InputErrors, and llama.cpp's tokenizer test vectors.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "crepe/core/device.hpp"
#include "crepe/core/error.hpp"
#include "crepe/engine/runner.hpp"

namespace crepe::test {

// ../shared beside the checkout (CREPE_SHARED_DIR overrides).
std::string shared_dir();
std::string shared_path(const std::string& relative);
std::string source_dir();

// The device the device-generic tests compute on: CREPE_TEST_DEVICE ("cpu" when unset;
// scripts/gpu-check.sh sets "cuda"), float32. Asking for a device this build or machine lacks fails
// the test loudly rather than quietly testing the CPU again.
Placement test_placement();
// CREPE_TEST_DEVICE itself, or "" when unset.
std::string test_device_name();
// Runner options for tests: test_placement(), prefetching as the CLI does, no progress output.
engine::RunnerOptions test_runner_options();

// A fresh directory under the system temp dir, removed (recursively) when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the built crepe binary with arguments (no shell), capturing stdout and stderr. Under
// CREPE_TEST_DEVICE, the commands that compute (eval, prune, search) get `--device` it unless the
// arguments name a device already.
CommandResult run_crepe(const std::vector<std::string>& args);
// Same, with `stdin_text` as the command's standard input.
CommandResult run_crepe(const std::vector<std::string>& args, const std::string& stdin_text);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& contents);

// The message of the InputError `action` throws; fails the test when it throws nothing.
template <typename Action>
std::string input_error_of(Action action) {
  try {
    action();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError";
  return "";
}

// llama.cpp's vocab test vectors, ../shared/tokenizers/vectors/NAME.inp and NAME.out: the generator
// writes every input followed by "\n__ggml_vocab_test__\n" (so the last input is followed by one
// too), and one line of ids (without BOS) per input, each id preceded by a space (an empty input
// gives an empty line).
std::vector<std::string> vocab_test_inputs(const std::string& name);
std::vector<std::vector<int32_t>> vocab_test_ids(const std::string& name);

}  // namespace crepe::test
