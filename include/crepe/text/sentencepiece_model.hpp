#pragma once
// SentencePiece `tokenizer.model` files, read and run by crepe itself.
//
// Why not libsentencepiece: Debian's libsentencepiece.so carries its own copy of protobuf-lite and
// exports those symbols, which collide with the full libprotobuf that LibTorch loads; a process
// linking both crashes during static initialisation. The model file is a small protobuf, and the
// BPE encoder LLaMA-family models use is a few dozen lines, so crepe implements both.
//
// Supported: model_type BPE (LLaMA-1/2, Mistral v0.1, TinyLlama, llama2.c models) with byte
// fallback, user-defined pieces, and the identity normaliser (add_dummy_prefix,
// remove_extra_whitespaces, escape_whitespaces, treat_whitespace_as_suffix). A Unigram model or an
// NFKC normaliser with a precompiled character map is refused with an InputError naming the file.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace crepe::text {

struct SentencePieceModel {
  enum class PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
  struct Piece {
    std::string text;
    float score = 0;
    PieceType type = PieceType::Normal;
  };
  std::vector<Piece> pieces;
  int model_type = 1;  // 1 unigram, 2 BPE, 3 word, 4 char (TrainerSpec.ModelType)
  bool byte_fallback = false;
  int unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string unk_surface = " \xE2\x81\x87 ";
  std::string normalizer_name;
  bool has_charsmap = false;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
  bool treat_whitespace_as_suffix = false;

  // Parses the protobuf bytes of a .model file; `source` names the file in errors.
  static SentencePieceModel parse(std::string_view bytes, const std::string& source);
  static SentencePieceModel load(const std::string& path);
};

// The SentencePiece BPE encoder: normalise, split into characters (user-defined pieces whole),
// repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece (leftmost
// first on ties), then map symbols to ids, falling back to <0xXX> byte pieces or <unk>.
class SentencePieceBpe {
 public:
  SentencePieceBpe(SentencePieceModel model, const std::string& source);

  std::vector<int32_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  std::string normalize(std::string_view text) const;

  const SentencePieceModel& model() const { return model_; }
  int32_t piece_id(std::string_view piece) const;  // -1 if absent

 private:
  void emit_symbol(std::string_view symbol, std::vector<int32_t>& out) const;

  SentencePieceModel model_;
  std::unordered_map<std::string, int32_t> mergeable_;  // normal and user-defined pieces
  std::unordered_map<std::string, int32_t> all_pieces_;
  std::vector<std::string> user_defined_;               // longest first
  std::array<int32_t, 256> byte_ids_{};
};

}  // namespace crepe::text
