// tokenizer.json's BPE model: vocabulary, merges by rank, byte fallback and <unk>, and a cache of
// whole pre-tokens (see hf_tokenizer_internal.hpp).
#include <algorithm>
#include <functional>
#include <queue>

#include "crepe/core/error.hpp"
#include "hf_tokenizer_internal.hpp"

namespace crepe::text::hf {

// ---- PairMap ----

void PairMap::reserve(size_t count) {
  size_t capacity = 16;
  while (capacity < count * 2) capacity *= 2;
  if (capacity <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity, Slot{kEmpty, 0, 0});
  mask_ = capacity - 1;
  count_ = 0;
  for (const Slot& s : old) {
    if (s.key != kEmpty) insert(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xFFFFFFFFu), s.rank, s.merged);
  }
}

void PairMap::grow() { reserve(std::max<size_t>(count_ + 1, slots_.size())); }

void PairMap::insert(int32_t left, int32_t right, uint32_t rank, int32_t merged) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  const uint64_t key = make_key(left, right);
  for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
    Slot& slot = slots_[i];
    if (slot.key == key) {
      slot.rank = rank;
      slot.merged = merged;
      return;
    }
    if (slot.key == kEmpty) {
      slot = Slot{key, rank, merged};
      ++count_;
      return;
    }
  }
}

// ---- StringIdMap ----

void StringIdMap::reserve(size_t count) {
  size_t capacity = 16;
  while (capacity < count * 2) capacity *= 2;
  if (capacity <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity, Slot{0, nullptr, 0, -1});
  mask_ = capacity - 1;
  count_ = 0;
  for (const Slot& slot : old) {
    if (slot.id >= 0) insert(std::string_view(slot.data, slot.size), slot.id);
  }
}

void StringIdMap::insert(std::string_view key, int32_t id) {
  if ((count_ + 1) * 2 > slots_.size()) reserve(std::max<size_t>(count_ + 1, slots_.size()));
  const size_t h = std::hash<std::string_view>{}(key);
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    Slot& slot = slots_[i];
    if (slot.id < 0) {
      slot = Slot{h, key.data(), static_cast<uint32_t>(key.size()), id};
      ++count_;
      return;
    }
    if (slot.hash == h && std::string_view(slot.data, slot.size) == key) {
      slot.id = id;
      return;
    }
  }
}

// ---- WordCache ----

bool WordCache::get(std::string_view word, std::vector<int32_t>& out) const {
  const size_t h = std::hash<std::string_view>{}(word);
  Shard& shard = shards_[(h >> 7) % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  auto it = shard.map.find(std::string(word));
  if (it == shard.map.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void WordCache::put(std::string_view word, const int32_t* ids, size_t count) const {
  const size_t h = std::hash<std::string_view>{}(word);
  Shard& shard = shards_[(h >> 7) % kShards];
  std::lock_guard<std::mutex> lock(shard.mutex);
  if (shard.map.size() >= kEntriesPerShard) return;  // full: later words are computed each time
  shard.map.emplace(std::string(word), std::vector<int32_t>(ids, ids + count));
}

// ---- BpeModel ----

namespace {

// Words this long or longer are not cached (Hugging Face's limit too).
constexpr size_t kMaxCachedWord = 256;
// Up to this many symbols, merging scans an array; beyond, it runs a priority queue.
constexpr size_t kShortWord = 48;

bool empty_or_null(const json& spec, const char* key) {
  if (!spec.contains(key) || spec[key].is_null()) return true;
  return spec[key].is_string() && spec[key].get<std::string>().empty();
}

std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

BpeModel::BpeModel(const json& spec, const std::string& where, bool byte_level) : byte_level_(byte_level) {
  if (!spec.contains("vocab")) throw_input_error(where, "the BPE model has no \"vocab\"");
  if (!spec.contains("merges")) throw_input_error(where, "the BPE model has no \"merges\"");
  const json& vocab = spec["vocab"];
  const json& merges = spec["merges"];
  if (!vocab.is_object()) throw_input_error(where, "the BPE model's \"vocab\" must be an object of token: id");
  if (!merges.is_array()) throw_input_error(where, "the BPE model's \"merges\" must be a list");

  if (spec.contains("dropout") && !spec["dropout"].is_null()) {
    if (!spec["dropout"].is_number() || spec["dropout"].get<double>() != 0.0)
      throw_input_error(where, "BPE dropout is not supported (crepe tokenizes deterministically)");
  }
  if (!empty_or_null(spec, "continuing_subword_prefix") || !empty_or_null(spec, "end_of_word_suffix"))
    throw_input_error(where, "BPE continuing_subword_prefix/end_of_word_suffix are not supported");
  const auto flag = [&](const char* key) {
    if (!spec.contains(key) || spec[key].is_null()) return false;
    if (!spec[key].is_boolean()) throw_input_error(where, std::string("the BPE model's \"") + key + "\" must be true or false");
    return spec[key].get<bool>();
  };
  byte_fallback_ = flag("byte_fallback");
  fuse_unk_ = flag("fuse_unk");
  ignore_merges_ = flag("ignore_merges");

  // Vocabulary. The key strings live in `keys` (never reallocated) so that maps can hold views.
  keys_.reserve(vocab.size());
  int64_t max_id = -1;
  std::vector<std::pair<size_t, int32_t>> entries;  // (index in keys_, id)
  entries.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() >= (int64_t{1} << 30))
      throw_input_error(where, "vocab entry " + in_quotes(it.key()) + " must have a non-negative integer id");
    const int32_t id = static_cast<int32_t>(it.value().get<int64_t>());
    keys_.push_back(it.key());
    entries.emplace_back(keys_.size() - 1, id);
    max_id = std::max<int64_t>(max_id, id);
  }
  tokens_.assign(static_cast<size_t>(max_id + 1), std::string_view());
  vocab_.reserve(entries.size());
  for (const auto& [index, id] : entries) {
    vocab_.insert(keys_[index], id);
    tokens_[static_cast<size_t>(id)] = keys_[index];
  }

  // What pre-tokens are looked up in: the file's spelling, or raw bytes for byte-level files.
  if (byte_level_) {
    raw_keys_.reserve(entries.size());
    raw_vocab_.reserve(entries.size());
    std::string raw;
    for (const auto& [index, id] : entries) {
      if (!byte_level_to_bytes(keys_[index], raw)) continue;  // no byte sequence spells it
      raw_keys_.push_back(raw);
      raw_vocab_.insert(raw_keys_.back(), id);
    }
    units_ = &raw_vocab_;
  } else {
    units_ = &vocab_;
  }
  byte_ids_.fill(-1);
  fallback_ids_.fill(-1);
  static const char* const kHex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char byte = static_cast<char>(b);
    if (byte_level_) byte_ids_[b] = raw_vocab_.find(std::string_view(&byte, 1));
    const std::string code = std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
    fallback_ids_[b] = vocab_.find(code);
  }

  if (spec.contains("unk_token") && !spec["unk_token"].is_null()) {
    if (!spec["unk_token"].is_string()) throw_input_error(where, "the BPE model's \"unk_token\" must be a string");
    const std::string unk = spec["unk_token"].get<std::string>();
    unk_id_ = vocab_.find(unk);
    if (unk_id_ < 0) throw_input_error(where, "unk_token " + in_quotes(unk) + " is not in the vocabulary");
  }

  // Merges, by rank: "a b" strings (older files) or ["a", "b"] lists.
  merges_.reserve(merges.size());
  std::string_view left, right;
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    if (m.is_string()) {
      const std::string& line = m.get_ref<const std::string&>();
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
        throw_input_error(where, "merge #" + std::to_string(rank) + " " + in_quotes(line) + " is not two tokens separated by one space");
      left = std::string_view(line).substr(0, space);
      right = std::string_view(line).substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get_ref<const std::string&>();
      right = m[1].get_ref<const std::string&>();
    } else {
      throw_input_error(where, "merge #" + std::to_string(rank) + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const auto id_of = [&](std::string_view token) {
      const int32_t id = vocab_.find(token);
      if (id < 0)
        throw_input_error(where, "merge #" + std::to_string(rank) + " (" + in_quotes(std::string(left)) + ", " +
                                     in_quotes(std::string(right)) + ") names " + in_quotes(std::string(token)) +
                                     ", which is not in the vocabulary");
      return id;
    };
    const int32_t a = id_of(left);
    const int32_t b = id_of(right);
    joined.assign(left);
    joined.append(right);
    const int32_t merged = id_of(joined);
    merges_.insert(a, b, static_cast<uint32_t>(rank), merged);
  }
}

// Which two units stand next to each other in some token: between two units that never do, no
// merge can ever reach across, so long pre-tokens can be cut there (see encode()).
void BpeModel::build_unit_bigrams() const {
  const std::vector<std::string>& spellings = byte_level_ ? raw_keys_ : keys_;
  for (const std::string& text : spellings) {
    int32_t previous = -1;
    for (size_t pos = 0; pos < text.size();) {
      int32_t unit = -1;
      pos += unit_at(text, pos, unit);
      if (previous >= 0 && unit >= 0) unit_bigrams_.insert(previous, unit, 0, 0);
      previous = unit;
    }
  }
}

int32_t BpeModel::find(std::string_view token) const { return vocab_.find(token); }

int32_t BpeModel::lookup_unit(std::string_view unit) const { return units_->find(unit); }

size_t BpeModel::unit_at(std::string_view word, size_t pos, int32_t& id) const {
  if (byte_level_) {
    id = byte_ids_[static_cast<unsigned char>(word[pos])];
    return 1;
  }
  const size_t length = std::max<size_t>(utf8_char_at(word, pos), 1);
  id = lookup_unit(word.substr(pos, length));
  return length;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& symbols) const {
  symbols.clear();
  symbols.reserve(word.size());
  // A pending <unk> (id, covers bytes); flushed when a known unit follows, as in tokenizers.
  bool pending_unk = false;
  for (size_t pos = 0; pos < word.size();) {
    int32_t id;
    const size_t length = unit_at(word, pos, id);
    const std::string_view unit = word.substr(pos, length);
    pos += length;
    if (id >= 0) {
      if (pending_unk) symbols.push_back(unk_id_);
      pending_unk = false;
      symbols.push_back(id);
      continue;
    }
    if (byte_fallback_) {
      // The unit as the vocabulary spells it, byte by byte.
      const std::string spelled = byte_level_ ? bytes_to_byte_level(unit) : std::string(unit);
      bool all = true;
      for (char c : spelled) all = all && fallback_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : spelled) symbols.push_back(fallback_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk && !fuse_unk_) symbols.push_back(unk_id_);
      pending_unk = true;
    }
    // Without an unk_token the unit is dropped, as in tokenizers.
  }
  if (pending_unk) symbols.push_back(unk_id_);
}

void BpeModel::merge(std::vector<int32_t>& symbols) const {
  const size_t n = symbols.size();
  if (n < 2) return;
  if (n > kShortWord) {
    merge_long(symbols);
    return;
  }
  // Lowest rank first, leftmost on ties: an array scan beats a heap for short words.
  uint32_t ranks[kShortWord];
  int32_t merged[kShortWord];
  size_t pairs = n - 1;
  const auto rate = [&](size_t i) {
    if (!merges_.find(symbols[i], symbols[i + 1], ranks[i], merged[i])) ranks[i] = UINT32_MAX;
  };
  for (size_t i = 0; i < pairs; ++i) rate(i);
  while (pairs > 0) {
    size_t best = 0;
    for (size_t i = 1; i < pairs; ++i)
      if (ranks[i] < ranks[best]) best = i;
    if (ranks[best] == UINT32_MAX) break;
    symbols[best] = merged[best];
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    for (size_t i = best; i + 1 < pairs; ++i) {
      ranks[i] = ranks[i + 1];
      merged[i] = merged[i + 1];
    }
    --pairs;
    if (best > 0) rate(best - 1);
    if (best < pairs) rate(best);
  }
}

void BpeModel::merge_long(std::vector<int32_t>& symbols) const {
  const int32_t n = static_cast<int32_t>(symbols.size());
  std::vector<int32_t> prev(n), next(n);
  std::vector<char> alive(n, 1);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> agenda;
  const auto consider = [&](int32_t left) {
    if (left < 0 || next[left] < 0) return;
    uint32_t rank;
    int32_t merged;
    if (merges_.find(symbols[left], symbols[next[left]], rank, merged)) agenda.push({rank, left, merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!agenda.empty()) {
    const Candidate top = agenda.top();
    agenda.pop();
    const int32_t left = top.pos;
    if (!alive[left] || next[left] < 0) continue;
    const int32_t right = next[left];
    uint32_t rank;
    int32_t merged;
    // Stale: one side has changed since this candidate was queued.
    if (!merges_.find(symbols[left], symbols[right], rank, merged) || rank != top.rank || merged != top.merged) continue;
    symbols[left] = merged;
    alive[right] = 0;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    consider(prev[left]);
    consider(left);
  }
  size_t out = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) symbols[out++] = symbols[i];
  symbols.resize(out);
}

void BpeModel::encode(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    // A pre-token that is itself a token is emitted whole (LLaMA-3).
    const int32_t id = lookup_unit(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (word.size() < kLongWord) {
    encode_merged(word, out);
    return;
  }
  // A long pre-token (SentencePiece-style files have no pre-tokenizer: the whole text is one) is
  // cut between two known units that stand next to each other in no token. Every token a merge
  // makes contains its parts' units in order, so no merge can reach across such a cut: the pieces
  // merge exactly as the whole would, and they repeat, so the cache serves them.
  std::call_once(unit_bigrams_once_, [this] { build_unit_bigrams(); });
  size_t begin = 0;
  int32_t previous = -1;
  for (size_t pos = 0; pos < word.size();) {
    int32_t unit = -1;
    const size_t length = unit_at(word, pos, unit);
    uint32_t rank;
    int32_t merged;
    if (previous >= 0 && unit >= 0 && !unit_bigrams_.find(previous, unit, rank, merged)) {
      encode_merged(word.substr(begin, pos - begin), out);
      begin = pos;
    }
    previous = unit;
    pos += length;
  }
  encode_merged(word.substr(begin), out);
}

void BpeModel::encode_merged(std::string_view word, std::vector<int32_t>& out) const {
  const bool cacheable = word.size() < kMaxCachedWord;
  if (cacheable && cache_.get(word, out)) return;
  std::vector<int32_t> symbols;
  initial_symbols(word, symbols);
  merge(symbols);
  if (cacheable) cache_.put(word, symbols.data(), symbols.size());
  out.insert(out.end(), symbols.begin(), symbols.end());
}

}  // namespace crepe::text::hf
