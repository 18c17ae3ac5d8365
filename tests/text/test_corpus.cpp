// Corpus reading, calibration sampling (the Wanda/SparseGPT protocol) and evaluation windows.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/core/rng.hpp"
#include "crepe/text/corpus.hpp"
#include "crepe/text/tokenizer.hpp"
#include "test_support.hpp"

namespace crepe::text {
namespace {

using crepe::test::input_error_of;
using crepe::test::read_file;
using crepe::test::shared_path;
using crepe::test::TempDir;
using crepe::test::write_file;
using Ids = std::vector<int32_t>;

const Tokenizer& stories_tokenizer() {
  static const auto tokenizer = load_tokenizer(shared_path("models/stories260k"));
  return *tokenizer;
}

// ---- read_documents ------------------------------------------------------------------------------

TEST(ReadDocuments, PlainTextSplitsOnBlankLines) {
  TempDir dir;
  write_file(dir.file("corpus.txt"), "\n\nfirst line\n  second line \n\n \t \n\nthird\n\r\nlast\nline");
  const std::vector<std::string> expected = {"first line\n  second line ", "third", "last\nline"};
  EXPECT_EQ(read_documents(dir.file("corpus.txt")), expected);
}

TEST(ReadDocuments, JsonlReadsTextFields) {
  TempDir dir;
  const std::string records = "{\"text\": \"one\\ntwo\", \"url\": \"x\"}\n\n{\"timestamp\": 1, \"text\": \"three\"}\n";
  write_file(dir.file("c4.jsonl"), records);
  write_file(dir.file("c4-train.00000-of-01024.json"), records);
  const std::vector<std::string> expected = {"one\ntwo", "three"};
  EXPECT_EQ(read_documents(dir.file("c4.jsonl")), expected);
  EXPECT_EQ(read_documents(dir.file("c4-train.00000-of-01024.json")), expected);
}

TEST(ReadDocuments, MalformedJsonlNamesFileAndLine) {
  TempDir dir;
  write_file(dir.file("bad.jsonl"), "{\"text\": \"fine\"}\n\n{\"text\": 5}\n");
  write_file(dir.file("broken.jsonl"), "{\"text\": \"fine\"}\n{\"text\": \"unterminated}\n");
  write_file(dir.file("array.jsonl"), "[\"text\"]\n");
  EXPECT_EQ(input_error_of([&] { read_documents(dir.file("bad.jsonl")); }).rfind(dir.file("bad.jsonl") + ":3: ", 0), 0u);
  EXPECT_EQ(input_error_of([&] { read_documents(dir.file("broken.jsonl")); }).rfind(dir.file("broken.jsonl") + ":2: ", 0),
            0u);
  EXPECT_NE(input_error_of([&] { read_documents(dir.file("array.jsonl")); }).find(":1: "), std::string::npos);
}

TEST(ReadDocuments, MissingFileNamesIt) {
  TempDir dir;
  const std::string missing = dir.file("missing.txt");
  EXPECT_EQ(input_error_of([&] { read_documents(missing); }).rfind(missing + ": ", 0), 0u);
  EXPECT_EQ(input_error_of([&] { read_text_file(dir.path()); }).rfind(dir.path() + ": ", 0), 0u);
}

TEST(ReadDocuments, TextThatIsNotUtf8IsRefusedNamingTheFile) {
  TempDir dir;
  auto refused = [&](const std::string& name, const std::string& bytes, const std::string& phrase) {
    write_file(dir.file(name), bytes);
    const std::string message = input_error_of([&] { read_documents(dir.file(name)); });
    EXPECT_EQ(message.rfind(dir.file(name) + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(phrase), std::string::npos) << message;
  };
  refused("c4.jsonl.gz", std::string("\x1f\x8b\x08\x00rest", 8), "gzip-compressed");
  refused("c4.jsonl.zst", std::string("\x28\xb5\x2f\xfd\x00", 5), "zstd-compressed");
  refused("utf16.txt", std::string("\xff\xfeh\0i\0", 6), "UTF-16 or UTF-32 byte-order mark");
  refused("utf16-no-mark.txt", std::string("h\0e\0l\0l\0o\0", 10), "(0 malformed and 5 NUL bytes of 10");
  refused("latin1.txt", "caf\xe9 cr\xe8me br\xfbl\xe9" "e", "not UTF-8 text (4 malformed and 0 NUL bytes of 17");
  // Real corpora carry a stray bad byte now and then: under 1% passes, and valid UTF-8 of every
  // length passes untouched.
  std::string mostly = std::string(500, 'a') + "\xff" + std::string(1, '\0') + "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  write_file(dir.file("mostly.txt"), mostly);
  EXPECT_EQ(read_text_file(dir.file("mostly.txt")), mostly);
  // Overlong encodings and UTF-16 surrogates are not well-formed.
  write_file(dir.file("overlong.txt"), "\xc0\xaf\xed\xa0\x80");
  EXPECT_NE(input_error_of([&] { read_text_file(dir.file("overlong.txt")); }).find("not UTF-8"), std::string::npos);
}

// ---- sample_calibration ----------------------------------------------------------------------------

// Documents of varied length: a few long ones among many short ones.
std::vector<std::string> varied_documents() {
  std::vector<std::string> documents;
  for (int d = 0; d < 40; ++d) {
    std::string doc;
    const int sentences = (d % 7 == 0) ? 12 : 1 + d % 3;
    for (int s = 0; s < sentences; ++s)
      doc += (s ? " " : "") + std::string("Lily saw ") + std::to_string(d * 10 + s) + " red birds in the park.";
    documents.push_back(doc);
  }
  return documents;
}

struct ReferenceCorpus {
  std::vector<Ids> eligible;
  int64_t documents = 0;
};

// The joining rule written the slow, obvious way: extend a short document with its successors one
// at a time, re-tokenizing the joined text each time, until it exceeds seqlen.
ReferenceCorpus reference_join(const std::vector<std::string>& documents, const Tokenizer& tokenizer, int64_t seqlen) {
  ReferenceCorpus corpus;
  for (size_t i = 0; i < documents.size();) {
    ++corpus.documents;
    std::string text = documents[i++];
    Ids ids = tokenizer.encode_with_specials(text);
    while (static_cast<int64_t>(ids.size()) <= seqlen && i < documents.size()) {
      text += "\n\n" + documents[i++];
      ids = tokenizer.encode_with_specials(text);
    }
    if (static_cast<int64_t>(ids.size()) > seqlen) corpus.eligible.push_back(ids);
  }
  return corpus;
}

Ids row_of(const at::Tensor& ids, int64_t r) {
  const at::Tensor row = ids[r].contiguous();
  return Ids(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
}

bool is_slice_of_any(const Ids& row, const std::vector<Ids>& documents) {
  return std::any_of(documents.begin(), documents.end(), [&](const Ids& doc) {
    return std::search(doc.begin(), doc.end(), row.begin(), row.end()) != doc.end();
  });
}

TEST(SampleCalibration, ShapeAndSeedDeterminism) {
  const auto documents = varied_documents();
  const auto a = sample_calibration(documents, stories_tokenizer(), 16, 48, 7, "varied");
  const auto b = sample_calibration(documents, stories_tokenizer(), 16, 48, 7, "varied");
  const auto c = sample_calibration(documents, stories_tokenizer(), 16, 48, 8, "varied");
  EXPECT_EQ(a.ids.sizes(), (at::IntArrayRef{16, 48}));
  EXPECT_EQ(a.ids.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(a.ids, b.ids));
  EXPECT_FALSE(at::equal(a.ids, c.ids));
}

TEST(SampleCalibration, RowsAreSlicesOfJoinedDocuments) {
  const auto documents = varied_documents();
  const int64_t seqlen = 48;
  const auto set = sample_calibration(documents, stories_tokenizer(), 64, seqlen, 3, "varied");
  const auto reference = reference_join(documents, stories_tokenizer(), seqlen);

  int64_t corpus_tokens = 0;
  for (const auto& doc : documents) corpus_tokens += stories_tokenizer().encode_with_specials(doc).size();
  EXPECT_EQ(set.corpus_tokens, corpus_tokens);
  EXPECT_EQ(set.documents, reference.documents);
  EXPECT_EQ(set.eligible_documents, static_cast<int64_t>(reference.eligible.size()));
  for (int64_t r = 0; r < set.ids.size(0); ++r)
    EXPECT_TRUE(is_slice_of_any(row_of(set.ids, r), reference.eligible)) << "row " << r;
}

TEST(SampleCalibration, FollowsWandaProtocol) {
  // A random eligible document, then a start in randint(0, len - seqlen - 1), from crepe's Rng.
  const auto documents = varied_documents();
  const int64_t seqlen = 40, nsamples = 32;
  const uint64_t seed = 1234;
  const auto set = sample_calibration(documents, stories_tokenizer(), nsamples, seqlen, seed, "varied");
  const auto reference = reference_join(documents, stories_tokenizer(), seqlen);
  Rng rng(seed);
  for (int64_t r = 0; r < nsamples; ++r) {
    const Ids& doc = reference.eligible[rng.below(reference.eligible.size())];
    const auto start = static_cast<int64_t>(rng.below(doc.size() - seqlen));
    EXPECT_EQ(row_of(set.ids, r), Ids(doc.begin() + start, doc.begin() + start + seqlen)) << "row " << r;
  }
}

TEST(SampleCalibration, JoinsShortDocuments) {
  std::vector<std::string> documents;
  for (int d = 0; d < 30; ++d) documents.push_back("Tom had " + std::to_string(d) + " little boats.");
  const int64_t seqlen = 64;
  for (const auto& doc : documents)
    ASSERT_LE(static_cast<int64_t>(stories_tokenizer().encode_with_specials(doc).size()), seqlen);

  const auto set = sample_calibration(documents, stories_tokenizer(), 20, seqlen, 0, "short");
  const auto reference = reference_join(documents, stories_tokenizer(), seqlen);
  EXPECT_GT(set.eligible_documents, 1);
  EXPECT_LT(set.documents, static_cast<int64_t>(documents.size()));
  EXPECT_EQ(set.documents, reference.documents);
  for (int64_t r = 0; r < set.ids.size(0); ++r)
    EXPECT_TRUE(is_slice_of_any(row_of(set.ids, r), reference.eligible)) << "row " << r;
}

TEST(SampleCalibration, WithoutBosWindowsHaveNoBos) {
  TempDir dir;
  std::filesystem::copy_file(shared_path("models/stories260k/tokenizer.model"), dir.file("tokenizer.model"));
  write_file(dir.file("tokenizer_config.json"), R"({"add_bos_token": false})");
  const auto tokenizer = load_tokenizer(dir.path());
  const auto set = sample_calibration(varied_documents(), *tokenizer, 64, 32, 5, "varied");
  EXPECT_FALSE(at::any(set.ids == tokenizer->bos_id()).item<bool>());
}

TEST(SampleCalibration, ErrorsWhenNothingIsLongEnough) {
  const std::vector<std::string> documents = {"Once upon a time.", "The end."};
  const std::string message =
      input_error_of([&] { sample_calibration(documents, stories_tokenizer(), 4, 512, 0, "tiny.txt"); });
  EXPECT_EQ(message.rfind("tiny.txt: ", 0), 0u) << message;
  EXPECT_NE(message.find("512"), std::string::npos) << message;
  EXPECT_EQ(input_error_of([&] { sample_calibration({}, stories_tokenizer(), 4, 8, 0, "empty.txt"); })
                .rfind("empty.txt: ", 0),
            0u);
}

TEST(SampleCalibration, RealCorpusIsQuickAndConsistent) {
  const std::string path = shared_path("data/tinystories-val.txt");
  const auto documents = read_documents(path);
  const auto tokenizer = load_tokenizer(shared_path("models/mini-llama-6m"));
  const auto begin = std::chrono::steady_clock::now();
  const auto set = sample_calibration(documents, *tokenizer, 128, 256, 0, path);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  RecordProperty("seconds", std::to_string(seconds));
  EXPECT_LT(seconds, 20.0) << "joining should stay near-linear in the corpus size";
  EXPECT_EQ(set.ids.sizes(), (at::IntArrayRef{128, 256}));

  const auto reference = reference_join(documents, *tokenizer, 256);
  EXPECT_EQ(set.documents, reference.documents);
  EXPECT_EQ(set.eligible_documents, static_cast<int64_t>(reference.eligible.size()));
  for (int64_t r = 0; r < set.ids.size(0); r += 16)
    EXPECT_TRUE(is_slice_of_any(row_of(set.ids, r), reference.eligible)) << "row " << r;
}

// ---- eval_windows ---------------------------------------------------------------------------------

std::string reference_text() {
  const std::string json = read_file(shared_path("models/stories260k/reference.json"));
  return nlohmann::json::parse(json)["inputs"]["text"].get<std::string>();
}

TEST(EvalWindows, NonOverlappingPrefixOfFullEncoding) {
  const std::string text = reference_text();
  const Ids full = stories_tokenizer().encode_with_specials(text);
  const int64_t seqlen = 128;
  const auto windows = eval_windows(text, stories_tokenizer(), seqlen, 0, "reference");
  EXPECT_EQ(windows.total_tokens, static_cast<int64_t>(full.size()));
  EXPECT_EQ(windows.ids.size(0), windows.total_tokens / seqlen);
  EXPECT_EQ(windows.ids.size(1), seqlen);
  EXPECT_EQ(windows.ids[0][0].item<int64_t>(), stories_tokenizer().bos_id());
  const at::Tensor flat = windows.ids.reshape({-1}).contiguous();
  const Ids joined(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
  EXPECT_EQ(joined, Ids(full.begin(), full.begin() + flat.numel()));
}

TEST(EvalWindows, MaxWindowsHonoured) {
  const auto windows = eval_windows(reference_text(), stories_tokenizer(), 128, 3, "reference");
  EXPECT_EQ(windows.ids.sizes(), (at::IntArrayRef{3, 128}));
  const auto all = eval_windows(reference_text(), stories_tokenizer(), 128, 0, "reference");
  EXPECT_TRUE(at::equal(windows.ids, all.ids.slice(0, 0, 3)));
  const auto many = eval_windows(reference_text(), stories_tokenizer(), 128, 1000, "reference");
  EXPECT_TRUE(at::equal(many.ids, all.ids));
}

TEST(EvalWindows, TooShortTextErrorNamesSource) {
  const std::string message = input_error_of([&] { eval_windows("Once upon a time.", stories_tokenizer(), 128, 0, "short.txt"); });
  EXPECT_EQ(message.rfind("short.txt: ", 0), 0u) << message;
  EXPECT_NE(message.find("128"), std::string::npos) << message;
}

}  // namespace
}  // namespace crepe::text
