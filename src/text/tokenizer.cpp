// Choosing and configuring a model directory's tokenizer.
#include "crepe/text/tokenizer.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/core/files.hpp"
#include "crepe/text/hf_tokenizer.hpp"

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

}  // namespace

TokenizerSettings read_tokenizer_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "tokenizer_config.json").string();
  TokenizerSettings settings;
  if (!fs::exists(path)) return settings;
  const json config = read_json_file(path);
  if (!config.is_object()) throw_input_error(path, "expected a JSON object");
  settings.add_bos = add_bos_token(config, path);
  settings.add_bos_set = config.contains("add_bos_token") && !config["add_bos_token"].is_null();
  settings.bos_token = token_content(config, "bos_token", path);
  settings.eos_token = token_content(config, "eos_token", path);
  return settings;
}

TokenizerKind parse_tokenizer_kind(const std::string& text, const std::string& option) {
  if (text == "auto") return TokenizerKind::Auto;
  if (text == "json") return TokenizerKind::HuggingFaceJson;
  if (text == "model") return TokenizerKind::SentencePiece;
  throw_input_error(option, "unknown tokenizer kind \"" + text + "\" (expected auto, json or model)");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir, TokenizerKind kind) {
  if (!fs::is_directory(dir)) throw_input_error(dir, "no such directory");
  const std::string model = (fs::path(dir) / "tokenizer.model").string();
  const std::string json_file = (fs::path(dir) / "tokenizer.json").string();
  const bool has_model = fs::exists(model);
  const bool has_json = fs::exists(json_file);

  if (kind == TokenizerKind::HuggingFaceJson && !has_json) throw_input_error(dir, "no tokenizer.json");
  if (kind == TokenizerKind::SentencePiece && !has_model) throw_input_error(dir, "no tokenizer.model");
  if (kind == TokenizerKind::Auto && !has_json && !has_model)
    throw_input_error(dir, "no tokenizer found (looked for tokenizer.json and tokenizer.model)");
  const TokenizerSettings settings = read_tokenizer_config(dir);
  const bool use_json = kind == TokenizerKind::HuggingFaceJson || (kind == TokenizerKind::Auto && has_json);
  if (use_json) return load_hf_tokenizer(json_file, settings);
  return load_sentencepiece(model, settings);
}

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path, TokenizerKind kind) {
  if (!fs::exists(path)) throw_input_error(path, "no such file");
  if (fs::is_directory(path)) throw_input_error(path, "is a directory (give a tokenizer.json or tokenizer.model file)");
  const fs::path parent = fs::path(path).parent_path();
  const TokenizerSettings settings = read_tokenizer_config(parent.empty() ? "." : parent.string());
  const bool ends_json = fs::path(path).extension() == ".json";
  const bool use_json = kind == TokenizerKind::HuggingFaceJson || (kind == TokenizerKind::Auto && ends_json);
  if (use_json) return load_hf_tokenizer(path, settings);
  return load_sentencepiece(path, settings);
}

}  // namespace crepe::text
