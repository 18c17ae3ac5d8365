// tokenizer.json's text side: UTF-8, the GPT-2 byte alphabet, PCRE2 regexes and added tokens (see
// hf_tokenizer_internal.hpp; normalizers, pre-tokenizers and decoders are in hf_tokenizer_pipeline.cpp).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <stdexcept>

#include "crepe/core/error.hpp"
#include "hf_tokenizer_internal.hpp"

namespace crepe::text::hf {

// ---- UTF-8 ----

size_t utf8_char_at(std::string_view s, size_t pos, size_t* bad_length) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte (Unicode Table 3-7)
  if (lead >= 0xC2 && lead <= 0xDF) length = 2;
  else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  }
  size_t good = length == 0 ? 0 : 1;
  for (size_t i = 1; i < length; ++i) {
    if (pos + i >= s.size()) break;
    const unsigned char c = byte(pos + i);
    const bool ok = i == 1 ? (c >= low && c <= high) : (c >= 0x80 && c <= 0xBF);
    if (!ok) break;
    ++good;
  }
  if (length != 0 && good == length) return length;
  if (bad_length) *bad_length = std::max<size_t>(good, 1);
  return 0;
}

std::string sanitize_utf8(std::string_view s) {
  size_t pos = 0;
  // Fast path: ASCII and well-formed text come back as they are.
  while (pos < s.size()) {
    const size_t length = utf8_char_at(s, pos);
    if (length == 0) break;
    pos += length;
  }
  if (pos == s.size()) return std::string(s);
  std::string out(s.substr(0, pos));
  while (pos < s.size()) {
    size_t bad = 1;
    const size_t length = utf8_char_at(s, pos, &bad);
    if (length) {
      out.append(s, pos, length);
      pos += length;
    } else {
      out += "\xEF\xBF\xBD";
      pos += bad;
    }
  }
  return out;
}

uint32_t code_point_at(std::string_view s, size_t pos, size_t length) {
  const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[pos + i])); };
  switch (length) {
    case 1: return byte(0);
    case 2: return ((byte(0) & 0x1F) << 6) | (byte(1) & 0x3F);
    case 3: return ((byte(0) & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
    default: return ((byte(0) & 0x07) << 18) | ((byte(1) & 0x3F) << 12) | ((byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
  }
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_unicode_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// ---- GPT-2 byte alphabet ----

namespace {

struct ByteAlphabet {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 0x144> to_byte{};  // the alphabet ends at U+0143
  ByteAlphabet() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      // Printable Latin-1 stands for itself; the rest (controls, space, soft hyphen...) is moved
      // past U+00FF in byte order.
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet instance;
  return instance;
}

}  // namespace

uint32_t byte_to_code_point(uint8_t byte) { return alphabet().to_cp[byte]; }

int code_point_to_byte(uint32_t cp) { return cp < alphabet().to_byte.size() ? alphabet().to_byte[cp] : -1; }

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, byte_to_code_point(static_cast<uint8_t>(c)));
  return out;
}

bool byte_level_to_bytes(std::string_view text, std::string& out) {
  out.clear();
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = utf8_char_at(text, pos);
    if (length == 0) return false;
    const int byte = code_point_to_byte(code_point_at(text, pos, length));
    if (byte < 0) return false;
    out += static_cast<char>(byte);
    pos += length;
  }
  return true;
}

// ---- Regex ----

namespace {
pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

// Match buffers for one find_all call.
struct MatchScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  explicit MatchScratch(const pcre2_code* code) {
    data = pcre2_match_data_create_from_pattern(code, nullptr);
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (!data || !context || !stack) throw std::bad_alloc();
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchScratch() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;
};

void find_in(const pcre2_code* code, MatchScratch& scratch, std::string_view text,
             std::vector<std::pair<size_t, size_t>>& out) {
  out.clear();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, scratch.data, scratch.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      throw std::runtime_error(std::string("tokenizer regex match failed: ") + reinterpret_cast<char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
    const size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      out.emplace_back(begin, end);
      start = end;
    } else {
      // An empty match splits nothing (Hugging Face drops empty pieces): move on one character.
      if (begin >= text.size()) break;
      start = begin + std::max<size_t>(utf8_char_at(text, begin), 1);
    }
  }
}
}  // namespace

Regex::Regex(const std::string& pattern, const std::string& where) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                                   &error, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    throw_input_error(where, "regex \"" + pattern + "\" does not compile (at offset " + std::to_string(offset) +
                                 ": " + reinterpret_cast<char*>(message) + ")");
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT support, pcre2_match interprets
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(as_code(code_)); }

void Regex::find_all(const std::vector<std::string_view>& texts,
                     std::vector<std::vector<std::pair<size_t, size_t>>>& matches) const {
  MatchScratch scratch(as_code(code_));
  matches.resize(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) find_in(as_code(code_), scratch, texts[i], matches[i]);
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  MatchScratch scratch(as_code(code_));
  std::vector<std::pair<size_t, size_t>> out;
  find_in(as_code(code_), scratch, text, out);
  return out;
}

// ---- Added tokens ----

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)) {
  bool single_word = false;
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    if (patterns_[i].empty()) continue;  // an empty token matches nothing
    by_first_byte_[static_cast<unsigned char>(patterns_[i][0])].push_back(i);
    single_word = single_word || tokens_[i].single_word;
  }
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [&](uint32_t a, uint32_t b) { return patterns_[a].size() > patterns_[b].size(); });
  }
  // Rust's regex \w, which tokenizers uses for single_word (PCRE2's \w leaves out marks and
  // joiners).
  if (single_word)
    word_char_ = std::make_unique<Regex>(R"(^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]$)", "added_tokens");
}

void AddedTokenMatcher::split(std::string_view text, bool at_start, std::vector<Segment>& out) const {
  const auto is_word_char = [&](size_t pos, size_t length) {
    return !word_char_->find_all(text.substr(pos, length)).empty();
  };
  const auto char_before = [&](size_t end, size_t& begin) {  // the character ending at `end`
    begin = end - 1;
    while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
  };
  const auto space_char_at = [&](size_t pos, size_t& length) {
    length = utf8_char_at(text, pos);
    return length != 0 && is_unicode_space(code_point_at(text, pos, length));
  };

  size_t done = 0;  // text before this offset has been emitted
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[pos])];
    uint32_t found = UINT32_MAX;
    for (uint32_t i : bucket) {
      if (text.compare(pos, patterns_[i].size(), patterns_[i]) == 0) {
        found = i;
        break;
      }
    }
    if (found == UINT32_MAX) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[found];
    size_t start = pos, stop = pos + patterns_[found].size();
    pos = stop;  // the search goes on after this match whatever becomes of it
    if (token.single_word) {
      size_t before = 0, length = 0;
      bool ok = true;
      if (start > 0) {
        char_before(start, before);
        ok = !is_word_char(before, start - before);
      }
      if (ok && stop < text.size()) {
        length = std::max<size_t>(utf8_char_at(text, stop), 1);
        ok = !is_word_char(stop, length);
      }
      if (!ok) continue;
    }
    if (token.lstrip) {
      while (start > done) {
        size_t before = 0, length = 0;
        char_before(start, before);
        if (!space_char_at(before, length)) break;
        start = before;
      }
    }
    if (token.rstrip) {
      size_t length = 0;
      while (stop < text.size() && space_char_at(stop, length)) stop += length;
      pos = stop;
    }
    if (start > done) out.push_back({-1, std::string(text.substr(done, start - done)), at_start && done == 0});
    out.push_back({token.id, std::string(), false});
    done = stop;
  }
  if (done < text.size()) out.push_back({-1, std::string(text.substr(done)), at_start && done == 0});
}

}  // namespace crepe::text::hf
