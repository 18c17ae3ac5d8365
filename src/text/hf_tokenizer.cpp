// Hugging Face tokenizer.json behind the Tokenizer interface: loading, validation, BOS/EOS, and the
// encode/decode pipelines (pieces in hf_tokenizer_text.cpp and hf_tokenizer_bpe.cpp).
#include "crepe/text/hf_tokenizer.hpp"

#include <filesystem>
#include <unordered_map>

#include "crepe/core/error.hpp"
#include "crepe/core/files.hpp"
#include "hf_tokenizer_internal.hpp"

namespace crepe::text {
namespace fs = std::filesystem;
using hf::json;

namespace {

std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }


bool flag(const json& spec, const char* key, bool fallback, const std::string& where) {
  if (!spec.contains(key) || spec[key].is_null()) return fallback;
  if (!spec[key].is_boolean()) throw_input_error(where, std::string("added token's \"") + key + "\" must be true or false");
  return spec[key].get<bool>();
}

// What the post_processor says about BOS.
struct Template {
  bool known = false;  // a TemplateProcessing says whether to add BOS
  bool adds_bos = false;
  int32_t bos_id = -1;
};

void read_post_processor(const json& spec, const std::string& where, Template& out) {
  if (spec.is_null()) return;
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    throw_input_error(where, "post_processor without a \"type\"");
  const std::string type = spec["type"].get<std::string>();
  if (type == "Sequence") {
    if (!spec.contains("processors") || !spec["processors"].is_array())
      throw_input_error(where, "post_processor Sequence needs a \"processors\" list");
    for (const json& step : spec["processors"]) read_post_processor(step, where, out);
    return;
  }
  if (type == "ByteLevel" || type == "RobertaProcessing") return;  // nothing about BOS
  if (type != "TemplateProcessing")
    throw_input_error(where, "unknown post_processor type " + in_quotes(type) +
                                 " (crepe supports TemplateProcessing, ByteLevel, RobertaProcessing, Sequence)");
  if (!spec.contains("single") || !spec["single"].is_array())
    throw_input_error(where, "post_processor TemplateProcessing needs a \"single\" list");
  out = Template{};
  out.known = true;
  const json& single = spec["single"];
  if (single.empty() || !single[0].is_object() || !single[0].contains("SpecialToken")) return;
  const json& first = single[0]["SpecialToken"];
  if (!first.is_object() || !first.contains("id") || !first["id"].is_string())
    throw_input_error(where, "post_processor template: a SpecialToken needs a string \"id\"");
  const std::string name = first["id"].get<std::string>();
  const json* ids = nullptr;
  if (spec.contains("special_tokens") && spec["special_tokens"].is_object() && spec["special_tokens"].contains(name)) {
    const json& entry = spec["special_tokens"][name];
    if (entry.is_object() && entry.contains("ids") && entry["ids"].is_array()) ids = &entry["ids"];
  }
  if (!ids || ids->empty() || !(*ids)[0].is_number_integer())
    throw_input_error(where, "post_processor template names special token " + in_quotes(name) +
                                 " but its \"special_tokens\" entry gives no ids");
  out.adds_bos = true;
  out.bos_id = (*ids)[0].get<int32_t>();
}

}  // namespace

struct HfTokenizer::Impl {
  std::string path;
  std::unique_ptr<hf::Normalizer> normalizer;
  std::unique_ptr<hf::PreTokenizer> pre_tokenizer;
  std::unique_ptr<hf::BpeModel> model;
  std::unique_ptr<hf::Decoder> decoder;
  std::unique_ptr<hf::AddedTokenMatcher> raw_added;         // normalized=false: found in the raw text
  std::unique_ptr<hf::AddedTokenMatcher> normalized_added;  // normalized=true: found after the normalizer
  std::unordered_map<std::string, int32_t> added_ids;       // content -> id
  std::unordered_map<int32_t, std::string> added_content;   // id -> content
  std::unordered_map<int32_t, std::string> added_decoded;   // id -> what decode() feeds the decoder, if not content
  int32_t vocab_size = 0;
  int32_t bos = -1, eos = -1;
  bool add_bos = false;

  int32_t token_id(std::string_view token) const {
    auto it = added_ids.find(std::string(token));
    if (it != added_ids.end()) return it->second;
    return model->find(token);
  }

  // Runs the pipeline; `ids` gets added tokens and, when `pre_tokens` is null, the model's ids.
  void run(const std::string& input, std::vector<int32_t>* ids, std::vector<std::string>* pre_tokens) const {
    const std::string text = hf::sanitize_utf8(input);
    std::vector<hf::Segment> segments;
    if (raw_added) raw_added->split(text, true, segments);
    else if (!text.empty()) segments.push_back({-1, text, true});
    std::vector<hf::Segment> pieces_of_segment;
    std::vector<hf::Piece> pieces;
    for (hf::Segment& segment : segments) {
      if (segment.id >= 0) {
        if (ids) ids->push_back(segment.id);
        continue;
      }
      if (normalizer) normalizer->normalize(segment.text);
      if (segment.text.empty()) continue;
      pieces_of_segment.clear();
      if (normalized_added) normalized_added->split(segment.text, segment.at_start, pieces_of_segment);
      else pieces_of_segment.push_back(std::move(segment));
      for (hf::Segment& piece : pieces_of_segment) {
        if (piece.id >= 0) {
          if (ids) ids->push_back(piece.id);
          continue;
        }
        pieces.clear();
        pieces.push_back({std::move(piece.text), piece.at_start});
        if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces);
        for (const hf::Piece& p : pieces) {
          if (pre_tokens) pre_tokens->push_back(p.text);
          else model->encode(p.text, *ids);
        }
      }
    }
  }
};

HfTokenizer::HfTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HfTokenizer::~HfTokenizer() = default;

std::unique_ptr<HfTokenizer> HfTokenizer::load(const std::string& path, const TokenizerSettings& settings) {
  const json root = read_json_file(path);
  if (!root.is_object()) throw_input_error(path, "expected a JSON object (a Hugging Face tokenizer.json)");
  if (!root.contains("model") || !root["model"].is_object()) throw_input_error(path, "no \"model\" object");
  const json& model = root["model"];
  if (model.contains("type")) {
    if (!model["type"].is_string()) throw_input_error(path, "the model's \"type\" must be a string");
    const std::string type = model["type"].get<std::string>();
    if (type != "BPE")
      throw_input_error(path, "model type " + in_quotes(type) + " is not supported (crepe reads only BPE tokenizer.json files)");
  } else if (!model.contains("merges")) {
    throw_input_error(path, "the model has no \"type\" (crepe reads only BPE tokenizer.json files)");
  }
  const auto section = [&](const char* key) -> const json& {
    static const json null_json;
    return root.contains(key) ? root[key] : null_json;
  };

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  bool byte_level = false;
  impl->normalizer = hf::make_normalizer(section("normalizer"), path);
  impl->pre_tokenizer = hf::make_pre_tokenizer(section("pre_tokenizer"), path, byte_level);
  impl->model = std::make_unique<hf::BpeModel>(model, path, byte_level);
  impl->decoder = hf::make_decoder(section("decoder"), path);
  impl->vocab_size = impl->model->size();

  // Added tokens.
  const json& added = section("added_tokens");
  if (!added.is_null() && !added.is_array()) throw_input_error(path, "\"added_tokens\" must be a list");
  std::vector<hf::AddedToken> raw_tokens, normalized_tokens;
  std::vector<std::string> raw_patterns, normalized_patterns;
  if (added.is_array()) {
    for (const json& entry : added) {
      if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_integer() ||
          entry["id"].get<int64_t>() < 0 || entry["id"].get<int64_t>() >= (int64_t{1} << 30) ||
          !entry.contains("content") || !entry["content"].is_string())
        throw_input_error(path, "each added token needs a non-negative integer \"id\" and a string \"content\"");
      hf::AddedToken token;
      token.id = entry["id"].get<int32_t>();
      token.content = entry["content"].get<std::string>();
      token.special = flag(entry, "special", false, path);
      token.single_word = flag(entry, "single_word", false, path);
      token.lstrip = flag(entry, "lstrip", false, path);
      token.rstrip = flag(entry, "rstrip", false, path);
      token.normalized = flag(entry, "normalized", !token.special, path);
      impl->added_ids[token.content] = token.id;
      impl->added_content[token.id] = token.content;
      impl->vocab_size = std::max(impl->vocab_size, token.id + 1);
      if (token.normalized && impl->normalizer) {
        std::string pattern = token.content;
        impl->normalizer->normalize(pattern);
        // Decoded in its normalized form, so that the decoder undoes the normalizer (as
        // tokenizers does since it caches normalized added tokens).
        impl->added_decoded[token.id] = pattern;
        normalized_patterns.push_back(std::move(pattern));
        normalized_tokens.push_back(std::move(token));
      } else if (token.normalized) {
        normalized_patterns.push_back(token.content);
        normalized_tokens.push_back(std::move(token));
      } else {
        raw_patterns.push_back(token.content);
        raw_tokens.push_back(std::move(token));
      }
    }
  }
  if (!raw_tokens.empty())
    impl->raw_added = std::make_unique<hf::AddedTokenMatcher>(std::move(raw_tokens), std::move(raw_patterns));
  if (!normalized_tokens.empty())
    impl->normalized_added =
        std::make_unique<hf::AddedTokenMatcher>(std::move(normalized_tokens), std::move(normalized_patterns));

  // BOS/EOS: tokenizer_config.json names them and may say whether to add BOS; the template says
  // the rest.
  Template tmpl;
  read_post_processor(section("post_processor"), path, tmpl);
  const auto named = [&](const std::string& token, const char* role) {
    const int32_t id = impl->token_id(token);
    if (id < 0)
      throw_input_error(path, std::string(role) + " " + in_quotes(token) + " from tokenizer_config.json is not in the vocabulary");
    return id;
  };
  impl->bos = settings.bos_token.empty() ? tmpl.bos_id : named(settings.bos_token, "bos_token");
  impl->eos = settings.eos_token.empty() ? -1 : named(settings.eos_token, "eos_token");
  // add_bos defaults to true, so false was asked for even when add_bos_set is not.
  const bool explicit_bos = settings.add_bos_set || !settings.add_bos;
  const bool add = explicit_bos ? settings.add_bos : (tmpl.known ? tmpl.adds_bos : true);
  impl->add_bos = add && impl->bos >= 0;
  return std::unique_ptr<HfTokenizer>(new HfTokenizer(std::move(impl)));
}

std::vector<int32_t> HfTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  impl_->run(text, &ids, nullptr);
  return ids;
}

std::vector<std::string> HfTokenizer::pre_tokens(const std::string& text) const {
  std::vector<std::string> out;
  impl_->run(text, nullptr, &out);
  return out;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= impl_->vocab_size) {
      throw_input_error(impl_->path, "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                         std::to_string(impl_->vocab_size) + " tokens)");
    }
    auto normalized = impl_->added_decoded.find(id);
    std::string t = normalized != impl_->added_decoded.end() ? normalized->second : token(id);
    if (!t.empty()) tokens.push_back(std::move(t));  // ids no token has are skipped, as in tokenizers
  }
  std::string out;
  if (impl_->decoder) {
    impl_->decoder->decode(tokens);
    for (const std::string& t : tokens) out += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
  }
  return out;
}

int32_t HfTokenizer::vocab_size() const { return impl_->vocab_size; }
int32_t HfTokenizer::bos_id() const { return impl_->bos; }
int32_t HfTokenizer::eos_id() const { return impl_->eos; }
bool HfTokenizer::adds_bos() const { return impl_->add_bos; }

std::string HfTokenizer::describe() const {
  const std::string name = fs::path(impl_->path).filename().string();
  const char* family = impl_->model->byte_level() ? "byte-level BPE" : "BPE";
  return "huggingface " + name + " (" + family + ", " + std::to_string(vocab_size()) + " tokens)";
}

int32_t HfTokenizer::token_id(std::string_view token) const { return impl_->token_id(token); }

std::string HfTokenizer::token(int32_t id) const {
  if (id < 0 || id >= impl_->vocab_size) return std::string();
  auto it = impl_->added_content.find(id);
  if (it != impl_->added_content.end()) return it->second;
  return id < impl_->model->size() ? std::string(impl_->model->token(id)) : std::string();
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& json_path, const TokenizerSettings& settings) {
  return HfTokenizer::load(json_path, settings);
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& json_path) {
  const fs::path parent = fs::path(json_path).parent_path();
  return HfTokenizer::load(json_path, read_tokenizer_config(parent.empty() ? "." : parent.string()));
}

}  // namespace crepe::text
