// Hugging Face tokenizer.json: LLaMA-3 against llama.cpp's vectors, a LLaMA-2 tokenizer.json built
// the way Hugging Face's converter builds one against crepe's SentencePiece BPE (itself proven
// identical to the SentencePiece library), Mistral's file, small hand-made files for each pipeline
// feature, loading, and malformed files.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/text/hf_tokenizer.hpp"
#include "crepe/text/sentencepiece_model.hpp"
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
using nlohmann::json;
namespace fs = std::filesystem;

std::string llama3_json() { return shared_path("tokenizers/llama3/tokenizer.json"); }
std::string mistral_json() { return shared_path("tokenizers/mistral/tokenizer.json"); }
std::string wikitext() { return read_file(shared_path("data/wikitext2-test.txt")); }

// Loading the 9 MB LLaMA-3 file takes a moment: once for the whole suite.
const HfTokenizer& llama3() {
  static const std::unique_ptr<HfTokenizer> tokenizer =
      HfTokenizer::load(llama3_json(), read_tokenizer_config(shared_path("tokenizers/llama3")));
  return *tokenizer;
}

// ---- LLaMA-3 (byte-level BPE) ----

TEST(HfLlama3, MatchesEveryLlamaBpeVector) {
  const auto inputs = vocab_test_inputs("llama-bpe");
  const auto outputs = vocab_test_ids("llama-bpe");
  ASSERT_EQ(inputs.size(), outputs.size());
  ASSERT_GE(inputs.size(), 40u);
  size_t passed = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto ids = llama3().encode(inputs[i]);
    EXPECT_EQ(ids, outputs[i]) << "case " << i << ": \"" << inputs[i] << "\"";
    passed += ids == outputs[i];
  }
  RecordProperty("vectors_passed", std::to_string(passed) + "/" + std::to_string(inputs.size()));
}

TEST(HfLlama3, DecodeRoundTripsEveryVectorInput) {
  for (const std::string& input : vocab_test_inputs("llama-bpe")) {
    EXPECT_EQ(llama3().decode(llama3().encode(input)), input) << "\"" << input << "\"";
  }
}

TEST(HfLlama3, BosEosAndVocabulary) {
  const HfTokenizer& t = llama3();
  EXPECT_EQ(t.vocab_size(), 128256);
  EXPECT_TRUE(t.adds_bos());
  EXPECT_EQ(t.bos_id(), 128000);
  EXPECT_EQ(t.eos_id(), 128001);
  const auto ids = t.encode_with_specials("Hello");
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], 128000);
  EXPECT_EQ(ids[1], 9906);  // "Hello", per the vectors
  EXPECT_EQ(t.encode_with_specials("Hello", false), std::vector<int32_t>{9906});
  EXPECT_EQ(t.describe(), "huggingface tokenizer.json (byte-level BPE, 128256 tokens)");
  EXPECT_EQ(t.token_id("<|begin_of_text|>"), 128000);
  EXPECT_EQ(t.token_id("Ġworld"), 1917);
  EXPECT_EQ(t.token(1917), "Ġworld");
  EXPECT_EQ(t.token_id("no such token"), -1);
}

TEST(HfLlama3, SpecialTokensInTextComeOutAsTheirIds) {
  const HfTokenizer& t = llama3();
  const int32_t hi = t.token_id("hi");
  ASSERT_GE(hi, 0);
  EXPECT_EQ(t.encode("<|begin_of_text|>hi"), (std::vector<int32_t>{128000, hi}));
  // Text on both sides is tokenized on its own, special tokens keep their ids.
  const std::vector<int32_t> expected = {9906, 128009, 128006, hi, 128007};
  EXPECT_EQ(t.encode("Hello<|eot_id|><|start_header_id|>hi<|end_header_id|>"), expected);
  // Decoding keeps special tokens as their text.
  EXPECT_EQ(t.decode({128000, hi, 128001}), "<|begin_of_text|>hi<|end_of_text|>");
  // A near miss is plain text.
  const auto near = t.encode("<|begin_of_text|");
  EXPECT_EQ(std::count(near.begin(), near.end(), 128000), 0);
}

TEST(HfLlama3, PreTokensFollowTheSplitRegex) {
  EXPECT_EQ(llama3().pre_tokens("Hello, y'all! 12345"),
            (std::vector<std::string>{"Hello", ",", " y", "'all", "!", " ", "123", "45"}));
  EXPECT_EQ(llama3().pre_tokens("a\n\n  b"), (std::vector<std::string>{"a", "\n\n", " ", " b"}));
}

TEST(HfLlama3, InvalidUtf8IsReadAsReplacementCharacters) {
  // As Python's bytes.decode(errors="replace") would hand it to the tokenizer.
  EXPECT_EQ(llama3().encode("a\xFF" "b"), llama3().encode("a\xEF\xBF\xBD" "b"));
  EXPECT_EQ(llama3().encode("\xE2\x82"), llama3().encode("\xEF\xBF\xBD"));  // one maximal subpart
}

TEST(HfLlama3, WikiTextRoundTripsAndIsFast) {
  const std::string text = wikitext();
  const auto start = std::chrono::steady_clock::now();
  const auto ids = llama3().encode(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("tokens", static_cast<int>(ids.size()));
  RecordProperty("encode_ms", static_cast<int>(seconds * 1000));
  EXPECT_GT(ids.size(), 250000u);
  EXPECT_LT(ids.size(), 350000u);
  EXPECT_EQ(llama3().decode(ids), text);
  // The cache was warm the second time; the result must not depend on it.
  EXPECT_EQ(llama3().encode(text), ids);
  EXPECT_LT(seconds, 5.0) << "the issue asks for well under a second on one core (see scripts/bench_tokenizer.sh)";
}

// Ids as (id, how many in a row).
std::vector<std::pair<int32_t, int>> runs(const std::vector<int32_t>& ids) {
  std::vector<std::pair<int32_t, int>> out;
  for (int32_t id : ids) {
    if (!out.empty() && out.back().first == id) ++out.back().second;
    else out.emplace_back(id, 1);
  }
  return out;
}

using Runs = std::vector<std::pair<int32_t, int>>;

// Pre-tokens of 256 bytes and more are cut where no merge can reach across (and SentencePiece-style
// files make the whole text one pre-token). Expected ids from Hugging Face tokenizers 0.23.
TEST(HfLlama3, LongPreTokensMatchHuggingFace) {
  EXPECT_EQ(runs(llama3().encode(std::string(1000, 'a'))), (Runs{{70540, 125}}));
  EXPECT_EQ(runs(llama3().encode(std::string(500, ' ') + "x")), (Runs{{58040, 3}, {5351, 1}, {6508, 1}, {865, 1}}));
  EXPECT_EQ(runs(llama3().encode(std::string(300, '\n') + "y")), (Runs{{80183, 9}, {46228, 1}, {88, 1}}));
  EXPECT_EQ(runs(llama3().encode(std::string(400, '-'))), (Runs{{3597, 5}, {44549, 1}}));
  std::string accents;
  for (int i = 0; i < 300; ++i) accents += "\u00e9";
  EXPECT_EQ(runs(llama3().encode(accents)), (Runs{{978, 300}}));
}

TEST(HfLlama3, EncodesFromSeveralThreadsAtOnce) {
  const auto inputs = vocab_test_inputs("llama-bpe");
  const auto outputs = vocab_test_ids("llama-bpe");
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round)
        for (size_t i = 0; i < inputs.size(); ++i) failures[t] += llama3().encode(inputs[i]) != outputs[i];
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST(HfLlama3, DecodeRejectsIdsOutsideVocabulary) {
  const std::string message = input_error_of([] { llama3().decode({1, 128256}); });
  EXPECT_NE(message.find(llama3_json()), std::string::npos) << message;
  EXPECT_NE(message.find("128256"), std::string::npos) << message;
}

// ---- A LLaMA-2 tokenizer.json made the way Hugging Face's converter makes it, against crepe's
// SentencePiece BPE ----

// SentencePieceExtractor's merges: for every piece, each split into two pieces of the vocabulary
// (by code point), sorted by the pair's ids; then all of them by the merged piece's score,
// highest first (stable).
json converter_merges(const SentencePieceModel& model) {
  std::map<std::string, int32_t> vocab;
  for (size_t id = 0; id < model.pieces.size(); ++id) vocab.emplace(model.pieces[id].text, static_cast<int32_t>(id));
  struct Merge {
    std::string left, right;
    float score;
  };
  std::vector<Merge> merges;
  for (const auto& piece : model.pieces) {
    std::vector<Merge> local;
    const std::string& text = piece.text;
    for (size_t cut = 1; cut < text.size(); ++cut) {
      if ((static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) continue;  // inside a character
      const std::string left = text.substr(0, cut), right = text.substr(cut);
      if (vocab.count(left) && vocab.count(right)) local.push_back({left, right, piece.score});
    }
    std::sort(local.begin(), local.end(), [&](const Merge& a, const Merge& b) {
      return std::make_pair(vocab[a.left], vocab[a.right]) < std::make_pair(vocab[b.left], vocab[b.right]);
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.score > b.score; });
  json out = json::array();
  for (const Merge& m : merges) out.push_back({m.left, m.right});
  return out;
}

// LLaMA-2's tokenizer.json as transformers' converter writes it, with the given normalizer and
// pre_tokenizer (Mistral's file has the same shape).
json llama2_tokenizer_json(const json& normalizer, const json& pre_tokenizer, const json& decoder) {
  const SentencePieceModel model = SentencePieceModel::load(shared_path("tokenizers/llama2/tokenizer.model"));
  json vocab = json::object();
  for (size_t id = 0; id < model.pieces.size(); ++id) vocab[model.pieces[id].text] = id;
  json added = json::array();
  for (int id : {0, 1, 2}) {
    added.push_back({{"id", id}, {"content", model.pieces[id].text}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", normalizer},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", decoder},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", converter_merges(model)}}}};
}

const json kPrependReplace = {
    {"type", "Sequence"},
    {"normalizers",
     {{{"type", "Prepend"}, {"prepend", "\u2581"}},
      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}};
const json kMistralDecoder = {
    {"type", "Sequence"},
    {"decoders",
     {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
      {{"type", "ByteFallback"}},
      {{"type", "Fuse"}},
      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};

struct Llama2Pair {
  TempDir dir;
  std::unique_ptr<HfTokenizer> hf;
  std::unique_ptr<SentencePieceBpe> spm;
};

// The converter's file, once (building 60k merges takes a moment).
const Llama2Pair& llama2_pair() {
  static const Llama2Pair* pair = [] {
    auto* p = new Llama2Pair;
    const std::string path = p->dir.file("tokenizer.json");
    write_file(path, llama2_tokenizer_json(kPrependReplace, nullptr, kMistralDecoder).dump());
    p->hf = HfTokenizer::load(path, TokenizerSettings{});
    const std::string model = shared_path("tokenizers/llama2/tokenizer.model");
    p->spm = std::make_unique<SentencePieceBpe>(SentencePieceModel::load(model), model);
    return p;
  }();
  return *pair;
}

TEST(HfSentencePieceDifferential, ConverterMergesAreComplete) {
  const auto& pair = llama2_pair();
  EXPECT_EQ(pair.hf->vocab_size(), 32000);
  EXPECT_TRUE(pair.hf->adds_bos());  // from the template
  EXPECT_EQ(pair.hf->bos_id(), 1);
  EXPECT_EQ(pair.hf->describe(), "huggingface tokenizer.json (BPE, 32000 tokens)");
}

TEST(HfSentencePieceDifferential, EveryLlamaSpmVectorMatches) {
  const auto& pair = llama2_pair();
  const auto inputs = vocab_test_inputs("llama-spm");
  const auto outputs = vocab_test_ids("llama-spm");
  ASSERT_EQ(inputs.size(), outputs.size());
  ASSERT_GE(inputs.size(), 40u);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto ids = pair.hf->encode(inputs[i]);
    EXPECT_EQ(ids, pair.spm->encode(inputs[i])) << "case " << i << ": \"" << inputs[i] << "\"";
    EXPECT_EQ(ids, outputs[i]) << "case " << i << ": \"" << inputs[i] << "\"";
    EXPECT_EQ(pair.hf->decode(ids), inputs[i]) << "case " << i;
  }
}

TEST(HfSentencePieceDifferential, WholeWikiTextMatches) {
  const auto& pair = llama2_pair();
  const std::string text = wikitext();
  const auto ids = pair.hf->encode(text);
  const auto expected = pair.spm->encode(text);
  ASSERT_EQ(ids.size(), expected.size());
  const auto mismatch = std::mismatch(ids.begin(), ids.end(), expected.begin());
  EXPECT_TRUE(mismatch.first == ids.end()) << "first difference at token " << (mismatch.first - ids.begin());
  EXPECT_EQ(pair.hf->decode(ids), text);
}

TEST(HfSentencePieceDifferential, MetaspacePreTokenizerMatchesToo) {
  // The other way such files are written: pre_tokenizer Metaspace (no split) and its decoder.
  TempDir dir;
  const json metaspace = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}};
  const json decoder = {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, metaspace}}};
  write_file(dir.file("tokenizer.json"), llama2_tokenizer_json(nullptr, metaspace, decoder).dump());
  const auto hf = HfTokenizer::load(dir.file("tokenizer.json"), TokenizerSettings{});
  const auto& spm = *llama2_pair().spm;
  for (const std::string& input : vocab_test_inputs("llama-spm")) {
    // Metaspace adds no "▁" to text that starts with a space, where SentencePiece's dummy prefix
    // does: the reason transformers moved to Prepend. Those inputs differ by design.
    if (!input.empty() && input[0] == ' ') continue;
    EXPECT_EQ(hf->encode(input), spm.encode(input)) << "\"" << input << "\"";
    EXPECT_EQ(hf->decode(hf->encode(input)), input) << "\"" << input << "\"";
  }
  // "first": only the start of the text gets "▁", not text after a special token.
  EXPECT_EQ(hf->encode("<s>Hello"), (std::vector<int32_t>{1, spm.piece_id("Hello")}));
  EXPECT_EQ(hf->encode("Hello"), (std::vector<int32_t>{spm.piece_id("\u2581Hello")}));
}

// ---- Mistral's own file ----

const HfTokenizer& mistral() {
  static const std::unique_ptr<HfTokenizer> tokenizer =
      HfTokenizer::load(mistral_json(), read_tokenizer_config(shared_path("tokenizers/mistral")));
  return *tokenizer;
}

TEST(HfMistral, HelloWorldSplitsIntoVocabularyPieces) {
  const HfTokenizer& t = mistral();
  const int32_t hello = t.token_id("\u2581Hello"), world = t.token_id("\u2581world");
  ASSERT_GE(hello, 0);
  ASSERT_GE(world, 0);
  EXPECT_EQ(t.encode("Hello world"), (std::vector<int32_t>{hello, world}));
  EXPECT_EQ(t.encode_with_specials("Hello world"), (std::vector<int32_t>{1, hello, world}));
  EXPECT_EQ(t.decode({1, hello, world}), "<s> Hello world");  // special tokens decode as text
  EXPECT_EQ(t.decode({hello, world}), "Hello world");
  EXPECT_EQ(t.vocab_size(), 32000);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_TRUE(t.adds_bos());
}

TEST(HfMistral, CharacterOutsideVocabularyFallsBackToBytes) {
  const HfTokenizer& t = mistral();
  const std::string llama = "\xF0\x9F\xA6\x99";  // U+1F999, not a piece of the vocabulary
  ASSERT_EQ(t.token_id(llama), -1);
  const auto ids = t.encode(llama);
  const std::vector<int32_t> expected = {t.token_id("\u2581"), t.token_id("<0xF0>"), t.token_id("<0x9F>"),
                                         t.token_id("<0xA6>"), t.token_id("<0x99>")};
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(t.decode(ids), llama);
}

TEST(HfMistral, RoundTripsEveryVectorInput) {
  for (const std::string& input : vocab_test_inputs("llama-spm")) {
    EXPECT_EQ(mistral().decode(mistral().encode(input)), input) << "\"" << input << "\"";
  }
}

TEST(HfMistral, LongTextsMatchHuggingFace) {
  // Expected ids from Hugging Face tokenizers 0.23.
  EXPECT_EQ(runs(mistral().encode(std::string(1000, 'a'))), (Runs{{264, 1}, {25332, 124}, {12648, 1}, {4474, 1}, {28708, 1}}));
  EXPECT_EQ(runs(mistral().encode(std::string(500, ' ') + "x")), (Runs{{359, 31}, {260, 1}, {1318, 1}}));
  EXPECT_EQ(runs(mistral().encode(std::string(400, '-'))), (Runs{{28705, 1}, {1177, 25}}));
  std::string accents;
  for (int i = 0; i < 300; ++i) accents += "\u00e9";
  EXPECT_EQ(runs(mistral().encode(accents)), (Runs{{1233, 1}, {28797, 299}}));
}

TEST(HfMistral, SpecialTokensSplitTheText) {
  const HfTokenizer& t = mistral();
  const int32_t hello = t.token_id("\u2581Hello");
  // Each side of </s> is normalized on its own, so both get their "▁".
  EXPECT_EQ(t.encode("Hello</s>Hello"), (std::vector<int32_t>{hello, 2, hello}));
}

// ---- Small hand-made files, one pipeline feature at a time ----

json tiny_model(const std::vector<std::string>& tokens, const json& merges) {
  json vocab = json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  return {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}};
}

std::unique_ptr<HfTokenizer> load_json(const TempDir& dir, const json& spec) {
  write_file(dir.file("tokenizer.json"), spec.dump());
  return HfTokenizer::load(dir.file("tokenizer.json"), TokenizerSettings{});
}

TEST(HfBpe, MergesApplyByRankInBothForms) {
  TempDir dir;
  const std::vector<std::string> tokens = {"a", "b", "c", "ab", "bc", "abc"};
  auto ab_first = load_json(dir, {{"model", tiny_model(tokens, {"a b", "b c", "ab c"})}});
  EXPECT_EQ(ab_first->encode("abc"), std::vector<int32_t>{5});
  EXPECT_EQ(ab_first->encode("abcab"), (std::vector<int32_t>{5, 3}));
  auto bc_first = load_json(dir, {{"model", tiny_model(tokens, json::array({json::array({"b", "c"}), json::array({"a", "b"})}))}});
  EXPECT_EQ(bc_first->encode("abc"), (std::vector<int32_t>{0, 4}));
  // Equal ranks: leftmost first ("aaa" -> "aa" "a").
  auto repeat = load_json(dir, {{"model", tiny_model({"a", "aa"}, {"a a"})}});
  EXPECT_EQ(repeat->encode("aaa"), (std::vector<int32_t>{1, 0}));
  // Without an unk_token, characters outside the vocabulary are dropped (and the rest still merges).
  EXPECT_EQ(repeat->encode("aza"), std::vector<int32_t>{1});
  // A word long enough for the priority-queue merge agrees with the short-word scan.
  std::string long_word(301, 'a');
  const auto ids = repeat->encode(long_word);
  EXPECT_EQ(ids, [] {
    std::vector<int32_t> v(150, 1);
    v.push_back(0);
    return v;
  }());
}

TEST(HfBpe, IgnoreMergesEmitsVocabularyWordsWhole) {
  TempDir dir;
  json model = tiny_model({"a", "b", "c", "ab", "abc"}, {"a b"});
  EXPECT_EQ(load_json(dir, {{"model", model}})->encode("abc"), (std::vector<int32_t>{3, 2}));
  model["ignore_merges"] = true;
  EXPECT_EQ(load_json(dir, {{"model", model}})->encode("abc"), std::vector<int32_t>{4});
}

TEST(HfBpe, UnknownCharactersFuseOrNot) {
  TempDir dir;
  json model = tiny_model({"<unk>", "a"}, json::array());
  model["unk_token"] = "<unk>";
  EXPECT_EQ(load_json(dir, {{"model", model}})->encode("axya"), (std::vector<int32_t>{1, 0, 0, 1}));
  model["fuse_unk"] = true;
  EXPECT_EQ(load_json(dir, {{"model", model}})->encode("axya"), (std::vector<int32_t>{1, 0, 1}));
}

TEST(HfBpe, ByteLevelWithTheGpt2Regex) {
  TempDir dir;
  // "Ġ" is the byte-level spelling of a space.
  const json spec = {
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", tiny_model({"H", "i", "Ġ", "!", "Hi", "ĠHi"}, {"H i", "Ġ Hi"})}};
  const auto t = load_json(dir, spec);
  EXPECT_EQ(t->pre_tokens("Hi Hi!"), (std::vector<std::string>{" Hi", " Hi", "!"}));
  EXPECT_EQ(t->encode("Hi Hi!"), (std::vector<int32_t>{5, 5, 3}));
  EXPECT_EQ(t->decode({5, 5, 3}), " Hi Hi!");
}

TEST(HfBpe, SplitBehaviors) {
  TempDir dir;
  const auto pre_tokens = [&](const std::string& behavior, bool invert) {
    const json spec = {
        {"pre_tokenizer",
         {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}}},
        {"model", tiny_model({"a"}, json::array())}};
    return load_json(dir, spec)->pre_tokens("a-b--c");
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pre_tokens("Removed", false), (V{"a", "b", "c"}));
  EXPECT_EQ(pre_tokens("Isolated", false), (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(pre_tokens("MergedWithPrevious", false), (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(pre_tokens("MergedWithNext", false), (V{"a", "-b", "-", "-c"}));
  EXPECT_EQ(pre_tokens("Contiguous", false), (V{"a", "-", "b", "--", "c"}));
  EXPECT_EQ(pre_tokens("Removed", true), (V{"-", "-", "-"}));
}

TEST(HfBpe, AddedTokenFlags) {
  TempDir dir;
  const auto added = [](int id, const std::string& content, bool lstrip, bool rstrip, bool single_word) {
    return json{{"id", id},         {"content", content},         {"special", true}, {"lstrip", lstrip},
                {"rstrip", rstrip}, {"single_word", single_word}, {"normalized", false}};
  };
  const json spec = {{"added_tokens",
                      {added(3, "<m>", true, false, false), added(4, "<r>", false, true, false),
                       added(5, "<mm>", false, false, false), added(6, "w", false, false, true)}},
                     {"model", tiny_model({"a", " ", "b"}, json::array())}};
  const auto t = load_json(dir, spec);
  using V = std::vector<int32_t>;
  EXPECT_EQ(t->encode("a <m> a"), (V{0, 3, 1, 0}));  // lstrip takes the space before
  EXPECT_EQ(t->encode("a <r> a"), (V{0, 1, 4, 0}));  // rstrip the space after
  EXPECT_EQ(t->encode("<mm>"), V{5});                // longest match
  EXPECT_EQ(t->encode("a w b"), (V{0, 1, 6, 1, 2})); // single_word: a word of its own...
  EXPECT_EQ(t->encode("awb"), (V{0, 2}));            // ...else plain text ("w" has no token)
  EXPECT_EQ(t->vocab_size(), 7);
  EXPECT_EQ(t->token(6), "w");
}

TEST(HfBpe, NormalizedAddedTokensAreFoundAfterTheNormalizer) {
  TempDir dir;
  const json spec = {
      {"normalizer", kPrependReplace},
      {"added_tokens",
       {{{"id", 3}, {"content", "x y"}, {"special", false}, {"normalized", true}, {"lstrip", false}, {"rstrip", false}}}},
      {"model", tiny_model({"\u2581", "a", "\u2581a"}, {"\u2581 a"})}};
  // "a x y" normalizes to "▁a▁x▁y", where the token's normalized form "▁x▁y" is found.
  EXPECT_EQ(load_json(dir, spec)->encode("a x y"), (std::vector<int32_t>{2, 3}));
}

TEST(HfBpe, BosFromTemplateAndConfig) {
  TempDir dir;
  json spec = {{"added_tokens", {{{"id", 1}, {"content", "<s>"}, {"special", true}}}},
               {"model", tiny_model({"a", "<s>"}, json::array())}};
  // No post_processor template and no config: BOS only when a bos_token is known.
  EXPECT_FALSE(load_json(dir, spec)->adds_bos());
  TokenizerSettings named;
  named.bos_token = "<s>";
  write_file(dir.file("tokenizer.json"), spec.dump());
  auto t = HfTokenizer::load(dir.file("tokenizer.json"), named);
  EXPECT_TRUE(t->adds_bos());
  EXPECT_EQ(t->bos_id(), 1);
  // A template without a leading special token: no BOS unless the config says add_bos_token.
  spec["post_processor"] = {{"type", "TemplateProcessing"}, {"single", {{{"Sequence", {{"id", "A"}}}}}}};
  write_file(dir.file("tokenizer.json"), spec.dump());
  EXPECT_FALSE(HfTokenizer::load(dir.file("tokenizer.json"), named)->adds_bos());
  named.add_bos_set = true;
  EXPECT_TRUE(HfTokenizer::load(dir.file("tokenizer.json"), named)->adds_bos());
  // add_bos = false is honoured even when the caller did not mark it as set.
  TokenizerSettings off;
  off.add_bos = false;
  off.bos_token = "<s>";
  EXPECT_FALSE(HfTokenizer::load(dir.file("tokenizer.json"), off)->adds_bos());
  named.bos_token = "<t>";
  const std::string message = input_error_of([&] { HfTokenizer::load(dir.file("tokenizer.json"), named); });
  EXPECT_NE(message.find("<t>"), std::string::npos) << message;
}

// ---- Loading ----

TEST(LoadTokenizerJson, DirectoryWithOnlyTokenizerJson) {
  const auto t = load_tokenizer(shared_path("tokenizers/llama3"));
  EXPECT_EQ(t->vocab_size(), 128256);
  EXPECT_EQ(t->encode_with_specials("Hello").front(), 128000);
}

TEST(LoadTokenizerJson, AutoPrefersJsonAndKindsForceOne) {
  TempDir dir;
  fs::copy_file(mistral_json(), dir.file("tokenizer.json"));
  fs::copy_file(shared_path("tokenizers/llama2/tokenizer.model"), dir.file("tokenizer.model"));
  EXPECT_EQ(load_tokenizer(dir.path())->describe().rfind("huggingface tokenizer.json", 0), 0u);
  EXPECT_EQ(load_tokenizer(dir.path(), TokenizerKind::HuggingFaceJson)->describe().rfind("huggingface", 0), 0u);
  EXPECT_EQ(load_tokenizer(dir.path(), TokenizerKind::SentencePiece)->describe(),
            "sentencepiece tokenizer.model (32000 tokens)");

  TempDir model_only;
  fs::copy_file(shared_path("tokenizers/llama2/tokenizer.model"), model_only.file("tokenizer.model"));
  EXPECT_EQ(load_tokenizer(model_only.path())->describe().rfind("sentencepiece", 0), 0u);
  const std::string message = input_error_of([&] { load_tokenizer(model_only.path(), TokenizerKind::HuggingFaceJson); });
  EXPECT_EQ(message, model_only.path() + ": no tokenizer.json");
  const std::string no_model =
      input_error_of([&] { load_tokenizer(shared_path("tokenizers/llama3"), TokenizerKind::SentencePiece); });
  EXPECT_NE(no_model.find("no tokenizer.model"), std::string::npos) << no_model;
}

TEST(LoadTokenizerJson, SingleFiles) {
  EXPECT_EQ(load_tokenizer_file(mistral_json())->bos_id(), 1);  // config beside the file
  EXPECT_EQ(load_tokenizer_file(shared_path("tokenizers/llama2/tokenizer.model"))->vocab_size(), 32000);
  const std::string message =
      input_error_of([] { load_tokenizer_file(shared_path("tokenizers/llama2/tokenizer.model"), TokenizerKind::HuggingFaceJson); });
  EXPECT_NE(message.find("invalid JSON"), std::string::npos) << message;
  EXPECT_NE(input_error_of([] { load_tokenizer_file("/nonexistent/tokenizer.json"); }).find("no such file"),
            std::string::npos);
}

TEST(LoadTokenizerJson, ParseTokenizerKind) {
  EXPECT_EQ(parse_tokenizer_kind("auto", "--kind"), TokenizerKind::Auto);
  EXPECT_EQ(parse_tokenizer_kind("json", "--kind"), TokenizerKind::HuggingFaceJson);
  EXPECT_EQ(parse_tokenizer_kind("model", "--kind"), TokenizerKind::SentencePiece);
  EXPECT_EQ(input_error_of([] { parse_tokenizer_kind("spm", "--kind"); }),
            "--kind: unknown tokenizer kind \"spm\" (expected auto, json or model)");
}

// ---- Malformed files ----

// The InputError of loading `contents` as a tokenizer.json; checks that it names the file.
std::string load_error(const std::string& contents) {
  TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  write_file(path, contents);
  const std::string message = input_error_of([&] { HfTokenizer::load(path, TokenizerSettings{}); });
  EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
  return message;
}

std::string with(const std::string& key, const json& value) {
  json spec = {{"model", tiny_model({"a", "b", "ab"}, {"a b"})}};
  spec[key] = value;
  return spec.dump();
}

TEST(HfMalformed, EachErrorNamesFileAndProblem) {
  const auto contains = [](const std::string& message, const std::string& phrase) {
    EXPECT_NE(message.find(phrase), std::string::npos) << message;
  };
  contains(load_error("{\"model\": {"), "invalid JSON");
  contains(load_error("[1, 2]"), "expected a JSON object");
  contains(load_error(R"({"model": {"type": "WordPiece", "vocab": {}}})"),
           "model type \"WordPiece\" is not supported (crepe reads only BPE");
  contains(load_error(R"({"model": {"type": "Unigram", "vocab": []}})"), "model type \"Unigram\" is not supported");
  contains(load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}}})"), "no \"merges\"");
  contains(load_error(R"({"model": {"type": "BPE", "merges": []}})"), "no \"vocab\"");
  contains(load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}})"),
           "names \"c\", which is not in the vocabulary");
  contains(load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})"),
           "names \"ab\", which is not in the vocabulary");
  contains(load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}})"), "merge #0");
  contains(load_error(with("pre_tokenizer", {{"type", "Whitespace"}})), "unknown pre_tokenizer type \"Whitespace\"");
  contains(load_error(with("pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}}}}})),
           "unknown pre_tokenizer type \"Digits\"");
  contains(load_error(with("normalizer", {{"type", "NFKC"}})), "unknown normalizer type \"NFKC\"");
  contains(load_error(with("decoder", {{"type", "WordPiece"}})), "unknown decoder type \"WordPiece\"");
  contains(load_error(with("post_processor", {{"type", "BertProcessing"}})), "unknown post_processor type");
  contains(load_error(with("pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}})),
           "does not compile");
  json bad_unk = {{"model", tiny_model({"a"}, json::array())}};
  bad_unk["model"]["unk_token"] = "<unk>";
  contains(load_error(bad_unk.dump()), "unk_token \"<unk>\" is not in the vocabulary");
}

}  // namespace
}  // namespace crepe::text
