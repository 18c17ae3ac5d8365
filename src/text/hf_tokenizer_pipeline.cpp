// tokenizer.json's normalizers, pre-tokenizers and decoders, as the Hugging Face tokenizers library
// runs them (see hf_tokenizer_internal.hpp).
#include <algorithm>

#include "crepe/core/error.hpp"
#include "hf_tokenizer_internal.hpp"

namespace crepe::text::hf {

// ---- JSON helpers ----

namespace {

std::string type_of(const json& spec, const std::string& where, const char* what) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    throw_input_error(where, std::string(what) + " without a \"type\"");
  return spec["type"].get<std::string>();
}

std::string string_field(const json& spec, const char* key, const std::string& where, const std::string& what) {
  if (!spec.contains(key) || !spec[key].is_string())
    throw_input_error(where, what + " needs a string \"" + key + "\"");
  return spec[key].get<std::string>();
}

bool bool_field(const json& spec, const char* key, bool fallback, const std::string& where, const std::string& what) {
  if (!spec.contains(key) || spec[key].is_null()) return fallback;
  if (!spec[key].is_boolean()) throw_input_error(where, what + "'s \"" + key + "\" must be true or false");
  return spec[key].get<bool>();
}

// A "pattern" as tokenizer.json writes it: {"String": "..."} or {"Regex": "..."}.
struct Pattern {
  std::string literal;            // when not a regex
  std::unique_ptr<Regex> regex;   // when a regex

  Pattern(const json& spec, const std::string& where, const std::string& what) {
    if (spec.is_object() && spec.contains("Regex") && spec["Regex"].is_string()) {
      regex = std::make_unique<Regex>(spec["Regex"].get<std::string>(), where);
    } else if (spec.is_object() && spec.contains("String") && spec["String"].is_string()) {
      literal = spec["String"].get<std::string>();
    } else if (spec.is_string()) {
      literal = spec.get<std::string>();
    } else {
      throw_input_error(where, what + "'s \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}");
    }
  }

  // Non-empty, non-overlapping matches, left to right.
  void find(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
    if (regex) {
      out = regex->find_all(text);
      return;
    }
    out.clear();
    if (literal.empty()) return;
    for (size_t at = text.find(literal); at != std::string_view::npos; at = text.find(literal, at + literal.size()))
      out.emplace_back(at, at + literal.size());
  }
};

std::string replace_all(std::string_view text, const Pattern& pattern, const std::string& content) {
  std::vector<std::pair<size_t, size_t>> matches;
  pattern.find(text, matches);
  if (matches.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size() + matches.size() * content.size());
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    out.append(text, prev, begin - prev);
    out += content;
    prev = end;
  }
  out.append(text, prev, std::string_view::npos);
  return out;
}

// ---- Normalizers ----

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& step : steps_) step->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(const json& spec, const std::string& where)
      : pattern_(spec.contains("pattern") ? spec["pattern"] : json(), where, "normalizer Replace"),
        content_(string_field(spec, "content", where, "normalizer Replace")) {}
  void normalize(std::string& text) const override { text = replace_all(text, pattern_, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

// See hf_tokenizer.hpp: the identity, exact for text already in NFC.
class NfcNormalizer : public Normalizer {
 public:
  void normalize(std::string&) const override {}
};

// ---- Pre-tokenizers ----

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const json& spec, const std::string& where) {
  const std::string name = string_field(spec, "behavior", where, "pre_tokenizer Split");
  if (name == "Removed") return Behavior::Removed;
  if (name == "Isolated") return Behavior::Isolated;
  if (name == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::MergedWithNext;
  if (name == "Contiguous") return Behavior::Contiguous;
  throw_input_error(where, "unknown Split behavior \"" + name +
                               "\" (known: Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)");
}

// Splits `piece` at `matches` as Hugging Face's NormalizedString::split does, appending to `out`.
void split_piece(Piece&& piece, const std::vector<std::pair<size_t, size_t>>& matches, Behavior behavior, bool invert,
                 std::vector<Piece>& out) {
  if (piece.text.empty()) return;
  if (matches.empty() && !invert) {
    // Every behaviour keeps an unmatched piece whole.
    out.push_back(std::move(piece));
    return;
  }
  // The whole piece as alternating (range, is_match) runs.
  struct Run {
    size_t begin, end;
    bool match;
  };
  std::vector<Run> runs;
  const std::string& text = piece.text;
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > prev) runs.push_back({prev, begin, invert});
    runs.push_back({begin, end, !invert});
    prev = end;
  }
  if (prev < text.size()) runs.push_back({prev, text.size(), invert});

  std::vector<Run> kept;  // match flag now means "remove"
  switch (behavior) {
    case Behavior::Removed: kept = runs; break;
    case Behavior::Isolated:
      for (const Run& r : runs) kept.push_back({r.begin, r.end, false});
      break;
    case Behavior::Contiguous: {
      bool previous = false;
      for (const Run& r : runs) {
        if (!kept.empty() && r.match == previous) kept.back().end = r.end;
        else kept.push_back({r.begin, r.end, false});
        previous = r.match;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool previous = false;
      for (const Run& r : runs) {
        if (r.match && !previous && !kept.empty()) kept.back().end = r.end;
        else kept.push_back({r.begin, r.end, false});
        previous = r.match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool previous = false;
      for (size_t i = runs.size(); i-- > 0;) {
        const Run& r = runs[i];
        if (r.match && !previous && !kept.empty()) kept.back().begin = r.begin;
        else kept.push_back({r.begin, r.end, false});
        previous = r.match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  for (const Run& r : kept) {
    if (r.match || r.end == r.begin) continue;
    out.push_back({text.substr(r.begin, r.end - r.begin), piece.at_start && r.begin == 0});
  }
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(const json& spec, const std::string& where)
      : pattern_(spec.contains("pattern") ? spec["pattern"] : json(), where, "pre_tokenizer Split"),
        behavior_(parse_behavior(spec, where)),
        invert_(bool_field(spec, "invert", false, where, "pre_tokenizer Split")) {}

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<std::vector<std::pair<size_t, size_t>>> matches;
    if (pattern_.regex) {
      std::vector<std::string_view> texts;
      texts.reserve(pieces.size());
      for (const Piece& p : pieces) texts.emplace_back(p.text);
      pattern_.regex->find_all(texts, matches);
    } else {
      matches.resize(pieces.size());
      for (size_t i = 0; i < pieces.size(); ++i) pattern_.find(pieces[i].text, matches[i]);
    }
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (size_t i = 0; i < pieces.size(); ++i) split_piece(std::move(pieces[i]), matches[i], behavior_, invert_, out);
    pieces = std::move(out);
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

// The GPT-2 split, ByteLevel's own when use_regex is set.
const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Leaves pieces as raw bytes: the BPE model, told the tokenizer is byte-level, maps each byte to
// its GPT-2 character itself.
class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(const json& spec, const std::string& where)
      : add_prefix_space_(bool_field(spec, "add_prefix_space", true, where, "pre_tokenizer ByteLevel")) {
    if (bool_field(spec, "use_regex", true, where, "pre_tokenizer ByteLevel"))
      regex_ = std::make_unique<Regex>(kGpt2Pattern, where);
  }

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_) {
      for (Piece& p : pieces)
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, 1, ' ');
    }
    if (!regex_) return;
    std::vector<std::string_view> texts;
    texts.reserve(pieces.size());
    for (const Piece& p : pieces) texts.emplace_back(p.text);
    std::vector<std::vector<std::pair<size_t, size_t>>> matches;
    regex_->find_all(texts, matches);
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (size_t i = 0; i < pieces.size(); ++i)
      split_piece(std::move(pieces[i]), matches[i], Behavior::Isolated, false, out);
    pieces = std::move(out);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { First, Always, Never };

// Metaspace's settings, shared by the pre-tokenizer and the decoder. Older files write
// add_prefix_space instead of prepend_scheme.
struct MetaspaceSpec {
  std::string replacement;
  PrependScheme scheme = PrependScheme::Always;
  bool split = true;

  MetaspaceSpec(const json& spec, const std::string& where, const std::string& what) {
    replacement = string_field(spec, "replacement", where, what);
    const size_t length = replacement.empty() ? 0 : utf8_char_at(replacement, 0);
    if (length == 0 || length != replacement.size()) throw_input_error(where, what + "'s replacement must be one character");
    if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()) {
      const std::string name = spec["prepend_scheme"].get<std::string>();
      if (name == "first") scheme = PrependScheme::First;
      else if (name == "always") scheme = PrependScheme::Always;
      else if (name == "never") scheme = PrependScheme::Never;
      else throw_input_error(where, what + "'s prepend_scheme \"" + name + "\" is not first, always or never");
    } else {
      scheme = bool_field(spec, "add_prefix_space", true, where, what) ? PrependScheme::Always : PrependScheme::Never;
    }
    split = bool_field(spec, "split", true, where, what);
  }
};

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(const json& spec, const std::string& where) : spec_(spec, where, "pre_tokenizer Metaspace") {}

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    const std::string& rep = spec_.replacement;
    std::vector<Piece> out;
    out.reserve(pieces.size());
    std::vector<std::pair<size_t, size_t>> matches;
    for (Piece& piece : pieces) {
      std::string text;
      text.reserve(piece.text.size() + 8);
      for (char c : piece.text) {
        if (c == ' ') text += rep;
        else text += c;
      }
      const bool starts = text.compare(0, rep.size(), rep) == 0;
      if (!starts && (spec_.scheme == PrependScheme::Always || (spec_.scheme == PrependScheme::First && piece.at_start)))
        text.insert(0, rep);
      Piece rewritten{std::move(text), piece.at_start};
      if (!spec_.split) {
        if (!rewritten.text.empty()) out.push_back(std::move(rewritten));
        continue;
      }
      matches.clear();
      for (size_t at = rewritten.text.find(rep); at != std::string::npos; at = rewritten.text.find(rep, at + rep.size()))
        matches.emplace_back(at, at + rep.size());
      split_piece(std::move(rewritten), matches, Behavior::MergedWithNext, false, out);
    }
    pieces = std::move(out);
  }

 private:
  MetaspaceSpec spec_;
};

// ---- Decoders ----

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

class ByteLevelDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::string bytes, token_bytes;
    for (const std::string& token : tokens) {
      // A token with a character outside the alphabet goes in as its UTF-8, as in tokenizers.
      if (byte_level_to_bytes(token, token_bytes)) bytes += token_bytes;
      else bytes += token;
    }
    tokens.assign(1, sanitize_utf8(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(const json& spec, const std::string& where)
      : pattern_(spec.contains("pattern") ? spec["pattern"] : json(), where, "decoder Replace"),
        content_(string_field(spec, "content", where, "decoder Replace")) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) token = replace_all(token, pattern_, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// Runs of <0xXX> tokens become their bytes when those are valid UTF-8, else one U+FFFD per byte.
class ByteFallbackDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    size_t pending_count = 0;
    auto flush = [&] {
      if (pending_count == 0) return;
      if (sanitize_utf8(pending) == pending) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending_count; ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (std::string& token : tokens) {
      int byte = -1;
      if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') {
        const auto hex = [](char c) {
          if (c >= '0' && c <= '9') return c - '0';
          if (c >= 'a' && c <= 'f') return c - 'a' + 10;
          if (c >= 'A' && c <= 'F') return c - 'A' + 10;
          return -1;
        };
        const int high = hex(token[3]), low = hex(token[4]);
        if (high >= 0 && low >= 0) byte = high * 16 + low;
      }
      if (byte >= 0) {
        pending += static_cast<char>(byte);
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const std::string& t : tokens) joined += t;
    tokens.assign(1, std::move(joined));
  }
};

// Removes up to `start` leading and `stop` trailing `content` characters from every token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(const json& spec, const std::string& where) {
    content_ = string_field(spec, "content", where, "decoder Strip");
    if (content_.empty() || utf8_char_at(content_, 0) != content_.size())
      throw_input_error(where, "decoder Strip's content must be one character");
    const auto count = [&](const char* key) -> size_t {
      if (!spec.contains(key) || !spec[key].is_number_integer() || spec[key].get<int64_t>() < 0)
        throw_input_error(where, std::string("decoder Strip needs a non-negative integer \"") + key + "\"");
      return spec[key].get<size_t>();
    };
    start_ = count("start");
    stop_ = count("stop");
  }
  void decode(std::vector<std::string>& tokens) const override {
    const size_t n = content_.size();
    for (std::string& token : tokens) {
      size_t begin = 0;
      for (size_t i = 0; i < start_ && token.compare(begin, n, content_) == 0; ++i) begin += n;
      size_t end = token.size();
      for (size_t i = 0; i < stop_ && end >= begin + n && token.compare(end - n, n, content_) == 0; ++i) end -= n;
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_ = 0, stop_ = 0;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(const json& spec, const std::string& where) : spec_(spec, where, "decoder Metaspace") {}
  void decode(std::vector<std::string>& tokens) const override {
    const std::string& rep = spec_.replacement;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const bool drop = i == 0 && spec_.scheme != PrependScheme::Never;
      std::string out;
      const std::string& token = tokens[i];
      for (size_t pos = 0; pos < token.size();) {
        if (token.compare(pos, rep.size(), rep) == 0) {
          // Every replacement character of the first token goes, as in tokenizers.
          if (!drop) out += ' ';
          pos += rep.size();
        } else {
          out += token[pos++];
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  MetaspaceSpec spec_;
};

template <typename Base, typename Maker>
std::vector<std::unique_ptr<Base>> make_steps(const json& spec, const char* key, const std::string& where,
                                              const std::string& what, Maker make) {
  if (!spec.contains(key) || !spec[key].is_array()) throw_input_error(where, what + " Sequence needs a \"" + key + "\" list");
  std::vector<std::unique_ptr<Base>> steps;
  for (const json& step : spec[key]) {
    auto made = make(step);
    if (made) steps.push_back(std::move(made));
  }
  return steps;
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, where, "normalizer");
  if (type == "Sequence") {
    return std::make_unique<SequenceNormalizer>(make_steps<Normalizer>(
        spec, "normalizers", where, "normalizer", [&](const json& s) { return make_normalizer(s, where); }));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(string_field(spec, "prepend", where, "normalizer Prepend"));
  if (type == "Replace") return std::make_unique<ReplaceNormalizer>(spec, where);
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  throw_input_error(where, "unknown normalizer type \"" + type + "\" (crepe supports Sequence, Prepend, Replace, NFC)");
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& spec, const std::string& where, bool& byte_level) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, where, "pre_tokenizer");
  if (type == "Sequence") {
    return std::make_unique<SequencePreTokenizer>(make_steps<PreTokenizer>(
        spec, "pretokenizers", where, "pre_tokenizer",
        [&](const json& s) { return make_pre_tokenizer(s, where, byte_level); }));
  }
  if (type == "Split") return std::make_unique<SplitPreTokenizer>(spec, where);
  if (type == "ByteLevel") {
    byte_level = true;
    return std::make_unique<ByteLevelPreTokenizer>(spec, where);
  }
  if (type == "Metaspace") return std::make_unique<MetaspacePreTokenizer>(spec, where);
  throw_input_error(where, "unknown pre_tokenizer type \"" + type +
                               "\" (crepe supports Sequence, Split, ByteLevel, Metaspace)");
}

std::unique_ptr<Decoder> make_decoder(const json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, where, "decoder");
  if (type == "Sequence") {
    return std::make_unique<SequenceDecoder>(make_steps<Decoder>(
        spec, "decoders", where, "decoder", [&](const json& s) { return make_decoder(s, where); }));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(spec, where);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") return std::make_unique<StripDecoder>(spec, where);
  if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(spec, where);
  throw_input_error(where, "unknown decoder type \"" + type +
                               "\" (crepe supports Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace)");
}

}  // namespace crepe::text::hf
