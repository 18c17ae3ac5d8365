// `crepe tokenize` as a user runs it: text on stdin, ids on stdout (and back with --decode).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace crepe {
namespace {

using test::run_crepe;
using test::shared_path;
using test::TempDir;
namespace fs = std::filesystem;

std::string llama3_dir() { return shared_path("tokenizers/llama3"); }

TEST(TokenizeCli, Llama3DirectoryGivesTheVectorIdsWithBos) {
  // Cases of tokenizers/vectors/llama-bpe.{inp,out}.
  const auto hello = run_crepe({"tokenize", "--model", llama3_dir()}, " Hello, world!");
  ASSERT_EQ(hello.exit_code, 0) << hello.err;
  EXPECT_EQ(hello.out, "128000 22691 11 1917 0\n");
  EXPECT_EQ(hello.err, "");
  const auto apple = run_crepe({"tokenize", "--model", llama3_dir()}, "\xC3\x84pfel");
  EXPECT_EQ(apple.out, "128000 88075 16276 301\n");
  const auto empty = run_crepe({"tokenize", "--model", llama3_dir()}, "");
  EXPECT_EQ(empty.out, "128000\n");
}

TEST(TokenizeCli, NoBos) {
  const auto result = run_crepe({"tokenize", "--model", llama3_dir(), "--no-bos"}, "Hello world");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "9906 1917\n");
  EXPECT_EQ(run_crepe({"tokenize", "--model", llama3_dir(), "--no-bos"}, "").out, "\n");
}

TEST(TokenizeCli, DecodeRoundTrip) {
  const std::string text = "Hello, y'all! How are you \xF0\x9F\x98\x81 ?\n\tTabs  and  spaces.\n";
  const auto ids = run_crepe({"tokenize", "--model", llama3_dir(), "--no-bos"}, text);
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  const auto back = run_crepe({"tokenize", "--model", llama3_dir(), "--decode"}, ids.out);
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, text);
  // BOS decodes as its text, as transformers' decode does by default.
  EXPECT_EQ(run_crepe({"tokenize", "--model", llama3_dir(), "--decode"}, "128000 9906\n").out,
            "<|begin_of_text|>Hello");
}

TEST(TokenizeCli, TokenizerFilesAndKinds) {
  const std::string mistral = shared_path("tokenizers/mistral/tokenizer.json");
  const std::string llama2 = shared_path("tokenizers/llama2/tokenizer.model");
  // Mistral's tokenizer_config.json beside the file asks for BOS <s> = 1.
  EXPECT_EQ(run_crepe({"tokenize", "--tokenizer", mistral}, "Hello world").out, "1 22557 1526\n");
  EXPECT_EQ(run_crepe({"tokenize", "--tokenizer", llama2}, "Hello world").out, "1 15043 3186\n");

  TempDir both;
  fs::copy_file(mistral, both.file("tokenizer.json"));
  fs::copy_file(llama2, both.file("tokenizer.model"));
  const auto json = run_crepe({"tokenize", "--model", both.path(), "--no-bos"}, "\xF0\x9F\xA6\x99");
  const auto model = run_crepe({"tokenize", "--model", both.path(), "--kind", "model", "--no-bos"}, "\xF0\x9F\xA6\x99");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  ASSERT_EQ(model.exit_code, 0) << model.err;
  EXPECT_EQ(json.out, "28705 243 162 169 156\n");  // Mistral: "▁" + byte fallback
  EXPECT_EQ(model.out, "29871 243 162 169 156\n");  // LLaMA-2's "▁" has another id
  EXPECT_EQ(run_crepe({"tokenize", "--model", both.path(), "--kind", "json", "--no-bos"}, "\xF0\x9F\xA6\x99").out,
            json.out);
  // The name prune and eval give the option works here too.
  EXPECT_EQ(run_crepe({"tokenize", "--model", both.path(), "--tokenizer-kind", "model", "--no-bos"}, "\xF0\x9F\xA6\x99").out,
            model.out);

  const auto missing = run_crepe({"tokenize", "--model", llama3_dir(), "--kind", "model"}, "x");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(missing.err, "crepe: error: " + llama3_dir() + ": no tokenizer.model\n");
}

TEST(TokenizeCli, BadInputExitsWithCode2) {
  const auto kind = run_crepe({"tokenize", "--model", llama3_dir(), "--kind", "spm"}, "x");
  EXPECT_EQ(kind.exit_code, 2);
  EXPECT_NE(kind.err.find("--kind: unknown tokenizer kind \"spm\""), std::string::npos) << kind.err;

  const auto neither = run_crepe({"tokenize"}, "x");
  EXPECT_EQ(neither.exit_code, 2);
  EXPECT_NE(neither.err.find("--model DIR or --tokenizer FILE"), std::string::npos) << neither.err;

  const auto both = run_crepe({"tokenize", "--model", llama3_dir(), "--tokenizer", "x.json"}, "x");
  EXPECT_EQ(both.exit_code, 2);

  // (Mistral's file loads faster than LLaMA-3's.)
  const std::string mistral = shared_path("tokenizers/mistral");
  const auto words = run_crepe({"tokenize", "--model", mistral, "--decode"}, "9906 hello");
  EXPECT_EQ(words.exit_code, 2);
  EXPECT_EQ(words.err, "crepe: error: stdin: \"hello\" is not a token id\n");

  const auto range = run_crepe({"tokenize", "--model", mistral, "--decode"}, "9906 999999");
  EXPECT_EQ(range.exit_code, 2);
  EXPECT_NE(range.err.find("token id 999999 is outside the vocabulary"), std::string::npos) << range.err;

  TempDir dir;
  test::write_file(dir.file("tokenizer.json"), "{\"model\": {\"type\": \"WordPiece\"}}");
  const auto wordpiece = run_crepe({"tokenize", "--tokenizer", dir.file("tokenizer.json")}, "x");
  EXPECT_EQ(wordpiece.exit_code, 2);
  EXPECT_NE(wordpiece.err.find(dir.file("tokenizer.json") + ": model type \"WordPiece\" is not supported"),
            std::string::npos)
      << wordpiece.err;
}

}  // namespace
}  // namespace crepe
