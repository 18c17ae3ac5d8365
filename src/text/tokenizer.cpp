// Choosing and configuring a model directory's tokenizer.
#include "crepe/text/tokenizer.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "crepe/core/error.hpp"

namespace crepe::text {
namespace fs = std::filesystem;
using nlohmann::json;

std::vector<int32_t> Tokenizer::encode_with_specials(const std::string& text) const {
  return encode_with_specials(text, adds_bos());
}

std::vector<int32_t> Tokenizer::encode_with_specials(const std::string& text, bool add_bos) const {
  std::vector<int32_t> ids = encode(text);
  if (add_bos && bos_id() >= 0) ids.insert(ids.begin(), bos_id());
  return ids;
}

namespace {

json parse_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_input_error(path, "cannot be read");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw_input_error(path, std::string("invalid JSON (") + e.what() + ")");
  }
}

// transformers writes special tokens either as "<s>" or as {"content": "<s>", ...}; null means unset.
std::string token_content(const json& config, const char* key, const std::string& path) {
  if (!config.contains(key) || config[key].is_null()) return "";
  const json& value = config[key];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  throw_input_error(path, std::string(key) + " must be a string or an object with a string \"content\"");
}

bool add_bos_token(const json& config, const std::string& path) {
  // LLaMA tokenizers add BOS unless told otherwise; null is how transformers writes "unset".
  if (!config.contains("add_bos_token") || config["add_bos_token"].is_null()) return true;
  if (!config["add_bos_token"].is_boolean()) throw_input_error(path, "add_bos_token must be true or false");
  return config["add_bos_token"].get<bool>();
}

std::unique_ptr<Tokenizer> json_not_supported(const std::string& dir) {
  throw_input_error(dir, "tokenizer.json is not supported yet (needs tokenizer.model)");
}

}  // namespace

TokenizerSettings read_tokenizer_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "tokenizer_config.json").string();
  TokenizerSettings settings;
  if (!fs::exists(path)) return settings;
  const json config = parse_json_file(path);
  if (!config.is_object()) throw_input_error(path, "expected a JSON object");
  settings.add_bos = add_bos_token(config, path);
  settings.bos_token = token_content(config, "bos_token", path);
  settings.eos_token = token_content(config, "eos_token", path);
  return settings;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir, TokenizerKind kind) {
  if (!fs::is_directory(dir)) throw_input_error(dir, "no such directory");
  const std::string model = (fs::path(dir) / "tokenizer.model").string();
  const bool has_model = fs::exists(model);
  const bool has_json = fs::exists(fs::path(dir) / "tokenizer.json");

  if (kind == TokenizerKind::HuggingFaceJson) return json_not_supported(dir);
  if (kind == TokenizerKind::SentencePiece && !has_model) throw_input_error(dir, "no tokenizer.model");
  if (kind == TokenizerKind::Auto && !has_model) {
    if (has_json) return json_not_supported(dir);
    throw_input_error(dir, "no tokenizer found (looked for tokenizer.model and tokenizer.json)");
  }
  return load_sentencepiece(model, read_tokenizer_config(dir));
}

}  // namespace crepe::text
