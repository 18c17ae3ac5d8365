// crepe's own SentencePiece BPE against the SentencePiece library, on whole corpora.
//
// This executable links libsentencepiece and NOT LibTorch (the two cannot share a process: see
// include/crepe/text/sentencepiece_model.hpp), so it compiles crepe's tokenizer sources directly.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <fstream>
#include <sstream>

#include "crepe/text/sentencepiece_model.hpp"

namespace crepe::text {
namespace {

std::string shared(const std::string& relative) { return std::string(CREPE_SHARED_DIR) + "/" + relative; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Lines as separate inputs exercise starts, ends and whitespace runs; the whole text exercises length.
void expect_same_ids(const std::string& model_path, const std::string& text) {
  sentencepiece::SentencePieceProcessor library;
  ASSERT_TRUE(library.Load(model_path).ok()) << model_path;
  const SentencePieceBpe ours(SentencePieceModel::load(model_path), model_path);

  std::vector<int> expected;
  ASSERT_TRUE(library.Encode(text, &expected).ok());
  const std::vector<int32_t> got = ours.encode(text);
  ASSERT_EQ(got.size(), expected.size()) << model_path;
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], expected[i]) << model_path << " token " << i;

  std::istringstream lines(text);
  std::string line;
  int checked = 0;
  while (std::getline(lines, line) && checked < 3000) {
    std::vector<int> line_expected;
    ASSERT_TRUE(library.Encode(line, &line_expected).ok());
    const auto line_got = ours.encode(line);
    ASSERT_EQ(std::vector<int>(line_got.begin(), line_got.end()), line_expected) << model_path << ": '" << line << "'";
    std::string decoded;
    ASSERT_TRUE(library.Decode(line_expected, &decoded).ok());
    ASSERT_EQ(ours.decode(line_got), decoded) << model_path << ": '" << line << "'";
    ++checked;
  }
}

TEST(SentencePieceDifferential, Llama2OnWikiText2Test) {
  expect_same_ids(shared("tokenizers/llama2/tokenizer.model"), slurp(shared("data/wikitext2-test.txt")));
}

TEST(SentencePieceDifferential, SharedModelsOnTheirTexts) {
  expect_same_ids(shared("models/mini-llama-6m/tokenizer.model"), slurp(shared("data/tinyshakespeare.txt")));
  expect_same_ids(shared("models/stories260k/tokenizer.model"), slurp(shared("data/tinystories-val.txt")));
}

TEST(SentencePieceDifferential, EdgeCases) {
  const std::string model = shared("tokenizers/llama2/tokenizer.model");
  for (const std::string text : {"", " ", "  leading", "trailing  ", "a\tb\n\nc", "emoji 🦙 and ünïcödé",
                                 "\xff\xfe invalid utf-8", "1234567890", "<s> not a control token </s>"}) {
    expect_same_ids(model, text);
  }
}

}  // namespace
}  // namespace crepe::text
