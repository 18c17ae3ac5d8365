#pragma once
// The parts of crepe's tokenizer.json reader (include/crepe/text/hf_tokenizer.hpp), private to
// src/text/hf_tokenizer*.cpp: hf_tokenizer.cpp (loading, the Tokenizer), hf_tokenizer_text.cpp
// (UTF-8, byte alphabet, regexes, added tokens), hf_tokenizer_pipeline.cpp (normalizers,
// pre-tokenizers, decoders), hf_tokenizer_bpe.cpp (the model). The pipeline mirrors the Hugging
// Face `tokenizers` library:
//
//   text --(added tokens, normalized=false)--> segments --normalizer--> --(added tokens,
//   normalized=true)--> pieces --pre_tokenizer--> pre-tokens --BPE model--> ids
//
// and decoding runs the file's decoder over the tokens' strings.
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <functional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace crepe::text::hf {

using nlohmann::json;

// ---- UTF-8 ----

// Length of the well-formed UTF-8 character at s[pos], or 0 when the bytes there are not one;
// `bad_length` then receives the length of the maximal ill-formed subpart (at least 1).
size_t utf8_char_at(std::string_view s, size_t pos, size_t* bad_length = nullptr);
// Every maximal ill-formed subpart replaced by U+FFFD: Python's errors="replace", Rust's
// from_utf8_lossy. Valid text comes back unchanged.
std::string sanitize_utf8(std::string_view s);
// The code point of the well-formed character at s[pos] (of length `length`).
uint32_t code_point_at(std::string_view s, size_t pos, size_t length);
void append_utf8(std::string& out, uint32_t code_point);
// Unicode White_Space, as Rust's char::is_whitespace and regex \s.
bool is_unicode_space(uint32_t code_point);

// ---- The GPT-2 byte-level alphabet: every byte is a printable character ----

uint32_t byte_to_code_point(uint8_t byte);
int code_point_to_byte(uint32_t code_point);  // -1 if the character stands for no byte
// "Hello world" -> "HelloĠworld".
std::string bytes_to_byte_level(std::string_view bytes);
// The inverse; false (and `out` unspecified) when a character stands for no byte.
bool byte_level_to_bytes(std::string_view text, std::string& out);

// ---- Regular expressions (PCRE2, UTF + UCP, JIT-compiled) ----

class Regex {
 public:
  // `where` names the file in the InputError thrown for a pattern PCRE2 cannot compile.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Byte ranges [begin, end) of the non-empty, non-overlapping matches in each of `texts` (valid
  // UTF-8), left to right. One call reuses its match buffers over all texts; safe from several
  // threads at once.
  void find_all(const std::vector<std::string_view>& texts,
                std::vector<std::vector<std::pair<size_t, size_t>>>& matches) const;
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8
};

// ---- Pipeline pieces ----

// A piece of text on its way to the model. `at_start`: it begins at offset 0 of the user's text
// (Metaspace's prepend_scheme "first" looks at that).
struct Piece {
  std::string text;
  bool at_start = false;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits (and may rewrite) every piece; pieces that end up empty are dropped.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Hugging Face's decode_chain: tokens in, tokens out; the caller joins the result.
  virtual void decode(std::vector<std::string>& tokens) const = 0;
};

// `where` is the file, named in InputErrors; `byte_level` is set when a ByteLevel pre-tokenizer
// is present (the model then works on raw bytes).
std::unique_ptr<Normalizer> make_normalizer(const json& spec, const std::string& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& spec, const std::string& where, bool& byte_level);
std::unique_ptr<Decoder> make_decoder(const json& spec, const std::string& where);

// ---- Added tokens ----

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// One run of text, or one added token (id >= 0), of a split.
struct Segment {
  int32_t id = -1;
  std::string text;
  bool at_start = false;
};

// Finds added tokens in text as Hugging Face's AddedVocabulary does: leftmost match, longest at
// that position; single_word, lstrip and rstrip applied.
class AddedTokenMatcher {
 public:
  // `patterns[i]` is what to look for in the text for `tokens[i]`.
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);
  bool empty() const { return tokens_.empty(); }
  // Appends the segments of `text` to `out`; `at_start` says whether `text` begins the user's text.
  void split(std::string_view text, bool at_start, std::vector<Segment>& out) const;

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices, longest pattern first
  std::unique_ptr<Regex> word_char_;                      // \w, only when a token is single_word
};

// ---- The BPE model ----

// (left id, right id) -> (rank, merged id), open addressing.
class PairMap {
 public:
  void reserve(size_t count);
  // Later insertions of a pair replace earlier ones, as in Hugging Face's merge map.
  void insert(int32_t left, int32_t right, uint32_t rank, int32_t merged);
  // False when the pair does not merge.
  bool find(int32_t left, int32_t right, uint32_t& rank, int32_t& merged) const {
    if (slots_.empty()) return false;
    const uint64_t key = make_key(left, right);
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.key == key) {
        rank = slot.rank;
        merged = slot.merged;
        return true;
      }
      if (slot.key == kEmpty) return false;
    }
  }
  size_t size() const { return count_; }

 private:
  struct Slot {
    uint64_t key;
    uint32_t rank;
    int32_t merged;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t make_key(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  }
  static size_t hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return static_cast<size_t>(key);
  }
  void grow();
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

// String -> id, open addressing; keys are views into storage the owner keeps alive and in place.
class StringIdMap {
 public:
  void reserve(size_t count);
  void insert(std::string_view key, int32_t id);  // a key inserted again takes the new id
  int32_t find(std::string_view key) const {      // -1 if absent
    if (slots_.empty()) return -1;
    const size_t h = std::hash<std::string_view>{}(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.id < 0) return -1;
      if (slot.hash == h && slot.size == key.size() && std::string_view(slot.data, slot.size) == key) return slot.id;
    }
  }
  size_t size() const { return count_; }

 private:
  struct Slot {
    size_t hash;
    const char* data;
    uint32_t size;
    int32_t id;  // -1: empty
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

// Results of whole pre-tokens, shared by all threads (pre-tokens repeat a lot in real text).
class WordCache {
 public:
  bool get(std::string_view word, std::vector<int32_t>& out) const;  // appends on a hit
  void put(std::string_view word, const int32_t* ids, size_t count) const;

 private:
  static constexpr size_t kShards = 32;
  static constexpr size_t kEntriesPerShard = 8192;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> map;
  };
  mutable std::array<Shard, kShards> shards_;
};

class BpeModel {
 public:
  // `spec` is tokenizer.json's "model" object (type BPE). `byte_level`: pre-tokens arrive as raw
  // bytes and each byte is the vocabulary's GPT-2 character for it.
  BpeModel(const json& spec, const std::string& where, bool byte_level);

  // Appends the ids of one pre-token.
  void encode(std::string_view word, std::vector<int32_t>& out) const;
  // Pre-tokens at least this long are cut where no merge can reach across (see encode()).
  static constexpr size_t kLongWord = 256;

  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }  // largest id + 1
  // The token as the file spells it, "" for an id the vocabulary skips.
  std::string_view token(int32_t id) const { return tokens_[static_cast<size_t>(id)]; }
  int32_t find(std::string_view token) const;  // by the file's spelling; -1 if absent
  size_t vocab_count() const { return vocab_.size(); }
  size_t merge_count() const { return merges_.size(); }
  bool byte_level() const { return byte_level_; }

 private:
  // Maps the pre-token to its initial symbols (characters, or bytes in byte-level mode), with
  // byte fallback and <unk> as Hugging Face's merge_word does.
  void initial_symbols(std::string_view word, std::vector<int32_t>& symbols) const;
  void merge(std::vector<int32_t>& symbols) const;
  // BPE of one word or piece of a word, through the cache.
  void encode_merged(std::string_view word, std::vector<int32_t>& out) const;
  // Length of the unit (character, or byte in byte-level mode) at word[pos] and its id (-1 when
  // the vocabulary has no token for it).
  size_t unit_at(std::string_view word, size_t pos, int32_t& id) const;
  void merge_long(std::vector<int32_t>& symbols) const;
  int32_t lookup_unit(std::string_view unit) const;

  std::vector<std::string_view> tokens_;                  // id -> file spelling (views into keys_)
  std::vector<std::string> keys_;                         // the vocabulary's spellings (never reallocated)
  StringIdMap vocab_;                                     // file spelling -> id (views into keys_)
  std::vector<std::string> raw_keys_;                     // byte-level: the spellings' raw bytes
  StringIdMap raw_vocab_;                                 // byte-level: raw bytes -> id
  const StringIdMap* units_ = nullptr;                    // what pre-tokens are matched against
  // (unit id, unit id) adjacent in some token; built on the first long pre-token.
  void build_unit_bigrams() const;
  mutable PairMap unit_bigrams_;
  mutable std::once_flag unit_bigrams_once_;
  std::array<int32_t, 256> byte_ids_{};                   // byte-level: single-byte token ids
  std::array<int32_t, 256> fallback_ids_{};               // <0xXX> tokens
  PairMap merges_;
  int32_t unk_id_ = -1;
  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  WordCache cache_;
};

}  // namespace crepe::text::hf
