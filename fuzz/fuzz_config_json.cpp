// Fuzzes config.json: JSON parsing as Checkpoint::open does it (a syntax error is the InputError
// "invalid JSON" there), parse_model_config's validation, and the sizes the checkpoint derives from
// an accepted config before it looks at any tensor (Checkpoint::validate_tensors' expected shapes).
#include <nlohmann/json.hpp>

#include "crepe/core/error.hpp"
#include "crepe/model/config.hpp"
#include "fuzz_harness.hpp"

namespace crepe::fuzz {

void config_json(const uint8_t* data, size_t size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(std::string("config.json: invalid JSON: ") + e.what());  // as Checkpoint::open reports it
  }
  const model::ModelConfig c = model::parse_model_config(j, "config.json");
  // What Checkpoint::validate_tensors computes from the config alone.
  const int64_t sizes[] = {c.q_size(), c.kv_size(), c.hidden_size, c.intermediate_size, c.vocab_size, c.head_dim};
  for (int64_t s : sizes) {
    if (s <= 0) throw std::logic_error("accepted config has a non-positive size");
  }
}

}  // namespace crepe::fuzz

CREPE_FUZZ_ENTRY_POINT(crepe::fuzz::config_json)
