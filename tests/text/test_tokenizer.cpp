// SentencePiece tokenization against independent references, and tokenizer loading from a model
// directory (tokenizer_config.json, missing files).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/text/tokenizer.hpp"
#include "test_support.hpp"

namespace crepe::text {
namespace {

using crepe::test::read_file;
using crepe::test::shared_path;
using crepe::test::TempDir;
using crepe::test::write_file;
namespace fs = std::filesystem;

// The message of the InputError `fn` throws; fails the test when it throws nothing.
template <typename Fn>
std::string input_error_of(Fn fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError";
  return "";
}

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

// llama.cpp's vocab test vectors: the generator writes every input followed by
// "\n__ggml_vocab_test__\n" (so the last input is followed by one too), and one line of ids per
// input, each id preceded by a space (an empty input gives an empty line).
std::vector<std::string> split_vector_inputs(const std::string& file) {
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t begin = 0;
  for (size_t at; (at = file.find(separator, begin)) != std::string::npos; begin = at + separator.size())
    inputs.push_back(file.substr(begin, at - begin));
  EXPECT_EQ(begin, file.size()) << "text after the last separator";
  return inputs;
}

std::vector<std::vector<int32_t>> read_vector_outputs(const std::string& file) {
  std::vector<std::vector<int32_t>> outputs;
  std::istringstream lines(file);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream ids(line);
    outputs.emplace_back(std::istream_iterator<int32_t>(ids), std::istream_iterator<int32_t>());
  }
  return outputs;
}

TEST(SentencePieceVectors, Llama2MatchesEveryCase) {
  const auto inputs = split_vector_inputs(read_file(shared_path("tokenizers/vectors/llama-spm.inp")));
  const auto outputs = read_vector_outputs(read_file(shared_path("tokenizers/vectors/llama-spm.out")));
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
  const auto inputs = split_vector_inputs(read_file(shared_path("tokenizers/vectors/llama-spm.inp")));
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
