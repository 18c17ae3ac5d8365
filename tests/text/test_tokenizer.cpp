// SentencePiece tokenization against independent references, and tokenizer loading from a model
// directory (tokenizer_config.json, missing files).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/text/tokenizer.hpp"
#include "test_support.hpp"

namespace crepe::text {
namespace {

using crepe::test::input_error_of;
using crepe::test::read_file;
using crepe::test::shared_path;
using crepe::test::TempDir;
using crepe::test::vocab_test_ids;
using crepe::test::vocab_test_inputs;
using crepe::test::write_file;
namespace fs = std::filesystem;

class ReferenceModel : public ::testing::TestWithParam<std::string> {};

// reference.json was made by an independent pipeline: BOS + SentencePiece ids of inputs.text.
TEST_P(ReferenceModel, EncodesReferenceTextExactly) {
  const std::string dir = shared_path("models/" + GetParam());
  const auto reference = nlohmann::json::parse(read_file(dir + "/reference.json"));
  const std::string text = reference["inputs"]["text"].get<std::string>();
  const auto expected = reference["inputs"]["input_ids_full"].get<std::vector<int32_t>>();

  const auto tokenizer = load_tokenizer(dir);
  EXPECT_TRUE(tokenizer->adds_bos());
  EXPECT_EQ(tokenizer->encode_with_specials(text), expected);
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(text)), text);
}

TEST_P(ReferenceModel, SpecialTokensAndDescription) {
  const auto tokenizer = load_tokenizer(shared_path("models/" + GetParam()));
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  const std::string vocab = std::to_string(tokenizer->vocab_size());
  EXPECT_EQ(tokenizer->describe(), "sentencepiece tokenizer.model (" + vocab + " tokens)");
}

INSTANTIATE_TEST_SUITE_P(SharedModels, ReferenceModel, ::testing::Values("stories260k", "mini-llama-6m"),
                         [](const auto& info) { return info.param == "stories260k" ? "stories260k" : "mini_llama_6m"; });

// llama.cpp's vocab test vectors (test_support.hpp describes the format).
TEST(SentencePieceVectors, Llama2MatchesEveryCase) {
  const auto inputs = vocab_test_inputs("llama-spm");
  const auto outputs = vocab_test_ids("llama-spm");
  ASSERT_EQ(inputs.size(), outputs.size());
  ASSERT_GE(inputs.size(), 40u);

  const auto tokenizer = load_sentencepiece(shared_path("tokenizers/llama2/tokenizer.model"));
  EXPECT_EQ(tokenizer->vocab_size(), 32000);
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(tokenizer->encode(inputs[i]), outputs[i]) << "case " << i << ": \"" << inputs[i] << "\"";
  }
}

TEST(SentencePieceVectors, SplitterKeepsWhitespaceOnlyInputs) {
  // Guards the separator convention: these cases exist only if inputs keep their own newlines.
  const auto inputs = vocab_test_inputs("llama-spm");
  EXPECT_EQ(inputs.front(), "ied 4 \u00bd months");
  EXPECT_NE(std::find(inputs.begin(), inputs.end(), ""), inputs.end());
  EXPECT_NE(std::find(inputs.begin(), inputs.end(), "\n\n\n"), inputs.end());
  EXPECT_NE(std::find(inputs.begin(), inputs.end(), "\t\n"), inputs.end());
}

// A directory holding stories260k's tokenizer.model and the given tokenizer_config.json (none if empty).
void make_tokenizer_dir(const TempDir& dir, const std::string& config) {
  fs::copy_file(shared_path("models/stories260k/tokenizer.model"), dir.file("tokenizer.model"));
  if (!config.empty()) write_file(dir.file("tokenizer_config.json"), config);
}

TEST(LoadTokenizer, HonoursAddBosFalse) {
  TempDir dir;
  make_tokenizer_dir(dir, R"({"add_bos_token": false, "bos_token": {"content": "<s>"}, "eos_token": "</s>"})");
  const auto tokenizer = load_tokenizer(dir.path());
  EXPECT_FALSE(tokenizer->adds_bos());
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->encode_with_specials("Once upon a time"), tokenizer->encode("Once upon a time"));
  const auto forced = tokenizer->encode_with_specials("Once upon a time", true);
  EXPECT_EQ(forced.front(), 1);
}

TEST(LoadTokenizer, AddsBosWhenConfigAbsentOrSilent) {
  TempDir bare, silent;
  make_tokenizer_dir(bare, "");
  make_tokenizer_dir(silent, R"({"tokenizer_class": "LlamaTokenizer"})");
  for (const TempDir* dir : {&bare, &silent}) {
    const auto tokenizer = load_tokenizer(dir->path());
    EXPECT_TRUE(tokenizer->adds_bos());
    const auto ids = tokenizer->encode_with_specials("Once upon a time");
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front(), 1);
    EXPECT_EQ(ids.size(), tokenizer->encode("Once upon a time").size() + 1);
  }
}

TEST(LoadTokenizer, ConfigNamesSpecialTokens) {
  TempDir dir;
  make_tokenizer_dir(dir, R"({"bos_token": "</s>", "eos_token": {"content": "<s>", "special": true}})");
  const auto tokenizer = load_tokenizer(dir.path());
  EXPECT_EQ(tokenizer->bos_id(), 2);
  EXPECT_EQ(tokenizer->eos_id(), 1);
}

TEST(LoadTokenizer, RejectsBadConfig) {
  TempDir unknown_token, wrong_type, not_json;
  make_tokenizer_dir(unknown_token, R"({"bos_token": "<|begin_of_text|>"})");
  make_tokenizer_dir(wrong_type, R"({"add_bos_token": "yes"})");
  make_tokenizer_dir(not_json, "{add_bos_token: false");
  EXPECT_NE(input_error_of([&] { load_tokenizer(unknown_token.path()); }).find("<|begin_of_text|>"),
            std::string::npos);
  EXPECT_NE(input_error_of([&] { load_tokenizer(wrong_type.path()); }).find("add_bos_token"), std::string::npos);
  EXPECT_NE(input_error_of([&] { load_tokenizer(not_json.path()); }).find(not_json.file("tokenizer_config.json")),
            std::string::npos);
}

TEST(LoadTokenizer, MissingFilesErrorNamesDirectory) {
  TempDir empty;
  const std::string message = input_error_of([&] { load_tokenizer(empty.path()); });
  EXPECT_EQ(message.rfind(empty.path() + ": ", 0), 0u) << message;
  EXPECT_NE(message.find("tokenizer.model"), std::string::npos) << message;
  EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;

  const std::string sp_only = input_error_of([&] { load_tokenizer(empty.path(), TokenizerKind::SentencePiece); });
  EXPECT_NE(sp_only.find(empty.path()), std::string::npos) << sp_only;

  const std::string nowhere = empty.file("nowhere");
  EXPECT_NE(input_error_of([&] { load_tokenizer(nowhere); }).find(nowhere), std::string::npos);
}

TEST(LoadSentencePiece, BadFileErrorNamesFile) {
  TempDir dir;
  write_file(dir.file("tokenizer.model"), "this is not a protobuf");
  const std::string garbage = dir.file("tokenizer.model");
  EXPECT_EQ(input_error_of([&] { load_sentencepiece(garbage); }).rfind(garbage + ": ", 0), 0u);
  const std::string missing = dir.file("missing.model");
  EXPECT_EQ(input_error_of([&] { load_sentencepiece(missing); }).rfind(missing + ": ", 0), 0u);
}

TEST(LoadSentencePiece, DecodeRejectsIdsOutsideVocabulary) {
  const auto tokenizer = load_sentencepiece(shared_path("models/stories260k/tokenizer.model"));
  EXPECT_NE(input_error_of([&] { tokenizer->decode({1, 512}); }).find("512"), std::string::npos);
}

}  // namespace
}  // namespace crepe::text
