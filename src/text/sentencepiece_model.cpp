#include "crepe/text/sentencepiece_model.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <queue>
#include <sstream>

#include "crepe/core/error.hpp"

namespace crepe::text {
namespace {

// ---- A minimal protobuf wire-format reader (only what ModelProto needs) ----

class WireReader {
 public:
  WireReader(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}
  bool done() const { return pos_ >= bytes_.size(); }

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      require(pos_ < bytes_.size(), source_, "truncated SentencePiece model (varint)");
      const uint8_t byte = static_cast<uint8_t>(bytes_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) return value;
    }
    throw_input_error(source_, "malformed SentencePiece model (varint too long)");
  }

  std::string_view take(uint64_t n) {
    require(n <= bytes_.size() - pos_, source_, "truncated SentencePiece model (field past the end)");
    std::string_view out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  float fixed32_float() {
    std::string_view raw = take(4);
    float value;
    std::memcpy(&value, raw.data(), 4);
    return value;
  }

  // Reads the next key; the caller then reads or skips the value of `wire_type`.
  void key(uint32_t& field, uint32_t& wire_type) {
    const uint64_t k = varint();
    field = static_cast<uint32_t>(k >> 3);
    wire_type = static_cast<uint32_t>(k & 7);
  }

  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case 0: varint(); return;
      case 1: take(8); return;
      case 2: take(varint()); return;
      case 5: take(4); return;
      default: throw_input_error(source_, "malformed SentencePiece model (wire type " + std::to_string(wire_type) + ")");
    }
  }

 private:
  std::string_view bytes_;
  const std::string& source_;
  size_t pos_ = 0;
};

SentencePieceModel::Piece parse_piece(std::string_view bytes, const std::string& source) {
  SentencePieceModel::Piece piece;
  WireReader r(bytes, source);
  while (!r.done()) {
    uint32_t field, wire;
    r.key(field, wire);
    if (field == 1 && wire == 2) piece.text = std::string(r.take(r.varint()));
    else if (field == 2 && wire == 5) piece.score = r.fixed32_float();
    else if (field == 3 && wire == 0) {
      const uint64_t type = r.varint();
      require(type >= 1 && type <= 6, source, "unknown SentencePiece piece type " + std::to_string(type));
      piece.type = static_cast<SentencePieceModel::PieceType>(type);
    } else r.skip(wire);
  }
  return piece;
}

int as_id(uint64_t raw) { return static_cast<int>(static_cast<int32_t>(static_cast<uint32_t>(raw))); }

void parse_trainer_spec(std::string_view bytes, SentencePieceModel& m, const std::string& source) {
  WireReader r(bytes, source);
  while (!r.done()) {
    uint32_t field, wire;
    r.key(field, wire);
    if (wire != 0 && !(field == 44 && wire == 2)) {
      r.skip(wire);
      continue;
    }
    switch (field) {
      case 3: m.model_type = static_cast<int>(r.varint()); break;
      case 24: m.treat_whitespace_as_suffix = r.varint() != 0; break;
      case 35: m.byte_fallback = r.varint() != 0; break;
      case 40: m.unk_id = as_id(r.varint()); break;
      case 41: m.bos_id = as_id(r.varint()); break;
      case 42: m.eos_id = as_id(r.varint()); break;
      case 43: m.pad_id = as_id(r.varint()); break;
      case 44: m.unk_surface = std::string(r.take(r.varint())); break;
      default: r.skip(wire);
    }
  }
}

void parse_normalizer_spec(std::string_view bytes, SentencePieceModel& m, const std::string& source) {
  WireReader r(bytes, source);
  while (!r.done()) {
    uint32_t field, wire;
    r.key(field, wire);
    if (field == 1 && wire == 2) m.normalizer_name = std::string(r.take(r.varint()));
    else if (field == 2 && wire == 2) m.has_charsmap = !r.take(r.varint()).empty();
    else if (field == 3 && wire == 0) m.add_dummy_prefix = r.varint() != 0;
    else if (field == 4 && wire == 0) m.remove_extra_whitespaces = r.varint() != 0;
    else if (field == 5 && wire == 0) m.escape_whitespaces = r.varint() != 0;
    else r.skip(wire);
  }
}

size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;  // invalid lead byte: one byte, later byte-fallback
}

const std::string kSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space
const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The byte a byte-fallback piece stands for: its text must be "<0xHH>" with two hex digits; -1 if not.
int byte_of_piece(const std::string& text) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
  const int high = hex(text[3]), low = hex(text[4]);
  return high < 0 || low < 0 ? -1 : high * 16 + low;
}

// Length of the valid UTF-8 character at text[pos], or 0 when the bytes there are not one.
size_t valid_utf8_at(std::string_view text, size_t pos) {
  const size_t len = utf8_length(static_cast<unsigned char>(text[pos]));
  const unsigned char lead = static_cast<unsigned char>(text[pos]);
  if (len == 1) return lead < 0x80 ? 1 : 0;
  if (pos + len > text.size()) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((static_cast<unsigned char>(text[pos + i]) & 0xC0) != 0x80) return 0;
  }
  return len;
}

// As SentencePiece's normaliser does: every byte that does not start a valid UTF-8 character
// becomes U+FFFD.
std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = valid_utf8_at(text, pos);
    if (len == 0) {
      out += kReplacement;
      ++pos;
    } else {
      out.append(text, pos, len);
      pos += len;
    }
  }
  return out;
}

}  // namespace

SentencePieceModel SentencePieceModel::parse(std::string_view bytes, const std::string& source) {
  SentencePieceModel m;
  WireReader r(bytes, source);
  while (!r.done()) {
    uint32_t field, wire;
    r.key(field, wire);
    if (wire != 2) {
      r.skip(wire);
      continue;
    }
    std::string_view body = r.take(r.varint());
    if (field == 1) m.pieces.push_back(parse_piece(body, source));
    else if (field == 2) parse_trainer_spec(body, m, source);
    else if (field == 3) parse_normalizer_spec(body, m, source);
  }
  require(!m.pieces.empty(), source, "not a SentencePiece model (no pieces)");
  return m;
}

SentencePieceModel SentencePieceModel::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  require(static_cast<bool>(in), path, "cannot open file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return parse(buffer.str(), path);
}

SentencePieceBpe::SentencePieceBpe(SentencePieceModel model, const std::string& source) : model_(std::move(model)) {
  require(model_.model_type == 2, source,
          "SentencePiece model type " + std::to_string(model_.model_type) +
              " is not supported (crepe reads BPE models, type 2, as LLaMA-family checkpoints use)");
  require(!model_.has_charsmap, source,
          "SentencePiece normaliser '" + model_.normalizer_name +
              "' uses a precompiled character map, which crepe does not implement (identity only)");
  const int32_t count = static_cast<int32_t>(model_.pieces.size());
  for (int id : {model_.unk_id, model_.bos_id, model_.eos_id}) {
    require(id < count, source, "special token id " + std::to_string(id) + " is outside the vocabulary");
  }
  byte_ids_.fill(-1);
  using Type = SentencePieceModel::PieceType;
  for (int32_t id = 0; id < count; ++id) {
    const auto& piece = model_.pieces[id];
    all_pieces_.emplace(piece.text, id);
    if (piece.type == Type::Normal || piece.type == Type::UserDefined) mergeable_.emplace(piece.text, id);
    if (piece.type == Type::UserDefined) user_defined_.push_back(piece.text);
    if (piece.type == Type::Byte) {
      const int byte = byte_of_piece(piece.text);
      require(byte >= 0, source,
              "byte piece " + std::to_string(id) + " is not of the form <0xHH> (SentencePiece byte fallback)");
      byte_ids_[byte] = id;
    }
  }
  std::sort(user_defined_.begin(), user_defined_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

int32_t SentencePieceBpe::piece_id(std::string_view piece) const {
  auto it = all_pieces_.find(std::string(piece));
  return it == all_pieces_.end() ? -1 : it->second;
}

std::string SentencePieceBpe::normalize(std::string_view text) const {
  std::string s = replace_invalid_utf8(text);
  if (model_.remove_extra_whitespaces) {
    std::string collapsed;
    for (char c : s) {
      if (c == ' ' && (collapsed.empty() || collapsed.back() == ' ')) continue;
      collapsed += c;
    }
    while (!collapsed.empty() && collapsed.back() == ' ') collapsed.pop_back();
    s = std::move(collapsed);
  }
  if (s.empty()) return s;
  if (model_.add_dummy_prefix) s = model_.treat_whitespace_as_suffix ? s + " " : " " + s;
  if (!model_.escape_whitespaces) return s;
  std::string escaped;
  escaped.reserve(s.size() + s.size() / 2);
  for (char c : s) {
    if (c == ' ') escaped += kSpace;
    else escaped += c;
  }
  return escaped;
}

void SentencePieceBpe::emit_symbol(std::string_view symbol, std::vector<int32_t>& out) const {
  auto it = all_pieces_.find(std::string(symbol));
  if (it != all_pieces_.end()) {
    out.push_back(it->second);
    return;
  }
  if (!model_.byte_fallback) {
    out.push_back(model_.unk_id);
    return;
  }
  for (unsigned char byte : symbol) out.push_back(byte_ids_[byte] >= 0 ? byte_ids_[byte] : model_.unk_id);
}

std::vector<int32_t> SentencePieceBpe::encode(std::string_view text) const {
  const std::string normalized = normalize(text);
  // Symbols as a doubly linked list over byte ranges of `normalized`.
  struct Symbol {
    size_t begin, size;
    int prev, next;
  };
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < normalized.size();) {
    size_t len = 0;
    for (const auto& piece : user_defined_) {
      if (normalized.compare(pos, piece.size(), piece) == 0) {
        len = piece.size();
        break;
      }
    }
    if (len == 0) len = std::min(utf8_length(static_cast<unsigned char>(normalized[pos])), normalized.size() - pos);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({pos, len, index - 1, index + 1});
    pos += len;
  }
  if (symbols.empty()) return {};
  symbols.back().next = -1;

  // Candidate merges: best score first, leftmost first on ties. Stale entries (a side merged away
  // since) are recognised by their recorded combined size and skipped.
  struct Candidate {
    float score;
    int left, right;
    size_t size;
    bool operator<(const Candidate& o) const { return score < o.score || (score == o.score && left > o.left); }
  };
  std::priority_queue<Candidate> agenda;
  std::string scratch;
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    scratch.assign(normalized, symbols[left].begin, symbols[left].size + symbols[right].size);
    auto it = mergeable_.find(scratch);
    if (it == mergeable_.end()) return;
    agenda.push({model_.pieces[it->second].score, left, right, scratch.size()});
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) consider(static_cast<int>(i), static_cast<int>(i + 1));

  while (!agenda.empty()) {
    const Candidate top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.size == 0 || right.size == 0 || left.next != top.right || left.size + right.size != top.size) continue;
    left.size += right.size;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.size = 0;
    consider(left.prev, top.left);
    consider(top.left, left.next);
  }

  std::vector<int32_t> ids;
  ids.reserve(symbols.size());
  for (int i = 0; i >= 0; i = symbols[i].next) {
    emit_symbol(std::string_view(normalized).substr(symbols[i].begin, symbols[i].size), ids);
  }
  return ids;
}

std::string SentencePieceBpe::decode(const std::vector<int32_t>& ids) const {
  using Type = SentencePieceModel::PieceType;
  std::string out;
  bool first_text = true;
  for (int32_t id : ids) {
    if (id < 0 || id >= static_cast<int32_t>(model_.pieces.size())) continue;
    const auto& piece = model_.pieces[id];
    std::string surface;
    switch (piece.type) {
      case Type::Control: continue;
      case Type::Unknown: surface = model_.unk_surface; break;
      case Type::Byte: surface = std::string(1, static_cast<char>(byte_of_piece(piece.text))); break;  // checked on load
      default: surface = piece.text;
    }
    // The dummy prefix added by normalize() is not part of the text.
    if (first_text && model_.add_dummy_prefix && surface.rfind(kSpace, 0) == 0) surface.erase(0, kSpace.size());
    first_text = false;
    out += surface;
  }
  // Visible spaces back to spaces.
  std::string result;
  result.reserve(out.size());
  for (size_t i = 0; i < out.size();) {
    if (out.compare(i, kSpace.size(), kSpace) == 0) {
      result += ' ';
      i += kSpace.size();
    } else {
      result += out[i++];
    }
  }
  return result;
}

}  // namespace crepe::text
