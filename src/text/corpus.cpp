// Reading text corpora and cutting them into calibration samples and evaluation windows.
#include "crepe/text/corpus.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "crepe/core/error.hpp"

namespace crepe::text {
namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;

// ---- reading ------------------------------------------------------------------------------------

namespace {

// Bytes that are not part of a well-formed UTF-8 sequence (overlongs and surrogates included).
size_t invalid_utf8_bytes(const std::string& text) {
  size_t invalid = 0;
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = length > 0 && i + length <= n && !(length == 2 && c < 0xC2);
    for (size_t k = 1; ok && k < length; ++k) ok = (s[i + k] & 0xC0) == 0x80;
    if (ok && length == 3) {
      const unsigned cp = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6);
      ok = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
    }
    if (ok && length == 4) ok = c <= 0xF4 && !(c == 0xF0 && s[i + 1] < 0x90) && !(c == 0xF4 && s[i + 1] >= 0x90);
    if (ok) {
      i += length;
    } else {
      ++invalid;
      ++i;
    }
  }
  return invalid;
}

// Text corpora are UTF-8. A compressed file, UTF-16 or binary data would otherwise be tokenized
// into garbage and calibrate or evaluate on it without a word.
void check_is_text(const std::string& path, const std::string& text) {
  struct Magic {
    const char* bytes;
    size_t size;
    const char* what;
  };
  for (const Magic& m : {Magic{"\x1f\x8b", 2, "gzip"}, Magic{"\x28\xb5\x2f\xfd", 4, "zstd"}, Magic{"BZh", 3, "bzip2"},
                         Magic{"\xfd" "7zXZ", 5, "xz"}, Magic{"PK\x03\x04", 4, "zip"}}) {
    if (text.compare(0, m.size, m.bytes, m.size) == 0) {
      throw_input_error(path, std::string("is ") + m.what + "-compressed; decompress it first");
    }
  }
  if (text.compare(0, 2, "\xff\xfe") == 0 || text.compare(0, 2, "\xfe\xff") == 0) {
    throw_input_error(path, "starts with a UTF-16 or UTF-32 byte-order mark: convert it to UTF-8 first");
  }
  // NUL is valid UTF-8 but no text has many: UTF-16 without a mark has one in every other byte.
  const size_t nul = static_cast<size_t>(std::count(text.begin(), text.end(), '\0'));
  const size_t invalid = invalid_utf8_bytes(text);
  if ((invalid + nul) * 100 > text.size()) {
    throw_input_error(path, "is not UTF-8 text (" + std::to_string(invalid) + " malformed and " + std::to_string(nul) +
                                " NUL bytes of " + std::to_string(text.size()) + "; binary data or UTF-16?)");
  }
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw_input_error(path, "no such file");
  if (fs::is_directory(path, ec)) throw_input_error(path, "is a directory, expected a text file");
  // A pipe is read to its end; a device such as /dev/zero has none.
  const fs::file_status status = fs::status(path, ec);
  if (fs::is_character_file(status) || fs::is_block_file(status)) throw_input_error(path, "is a device, expected a text file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_input_error(path, "cannot be opened for reading");
  std::string text;
  const auto size = fs::file_size(path, ec);
  if (!ec) text.reserve(size);
  text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) throw_input_error(path, "read error");
  check_is_text(path, text);
  return text;
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_jsonl_name(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  return ends_with(name, ".jsonl") || ends_with(name, ".json");
}

bool is_blank(const std::string& text, size_t begin, size_t end) {
  return std::all_of(text.begin() + begin, text.begin() + end,
                     [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

// Calls visit(begin, end) for every line of `text`, without its '\n'.
template <typename Visit>
void for_each_line(const std::string& text, Visit visit) {
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    visit(begin, end);
    begin = end + 1;
  }
}

// Plain text: runs of non-blank lines, kept byte for byte (inner newlines included).
std::vector<std::string> split_on_blank_lines(const std::string& text) {
  std::vector<std::string> documents;
  size_t doc_begin = std::string::npos, doc_end = 0;
  auto close = [&] {
    if (doc_begin != std::string::npos) documents.push_back(text.substr(doc_begin, doc_end - doc_begin));
    doc_begin = std::string::npos;
  };
  for_each_line(text, [&](size_t begin, size_t end) {
    if (is_blank(text, begin, end)) return close();
    if (doc_begin == std::string::npos) doc_begin = begin;
    doc_end = end;
  });
  close();
  return documents;
}

std::string jsonl_text(const std::string& line, const std::string& where) {
  nlohmann::json record;
  try {
    record = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    throw_input_error(where, std::string("invalid JSON Lines record (") + e.what() + ")");
  }
  if (!record.is_object() || !record.contains("text") || !record["text"].is_string())
    throw_input_error(where, "expected a JSON object with a string field \"text\"");
  return record["text"].get<std::string>();
}

// JSONL (C4's format): one record per non-blank line. Records whose text is blank are skipped, as
// a blank run can never form a plain-text document either.
std::vector<std::string> parse_jsonl(const std::string& text, const std::string& path) {
  std::vector<std::string> documents;
  int64_t line_number = 0;
  for_each_line(text, [&](size_t begin, size_t end) {
    ++line_number;
    if (is_blank(text, begin, end)) return;
    std::string doc = jsonl_text(text.substr(begin, end - begin), path + ":" + std::to_string(line_number));
    if (!is_blank(doc, 0, doc.size())) documents.push_back(std::move(doc));
  });
  return documents;
}

}  // namespace

std::vector<std::string> read_documents(const std::string& path) {
  const std::string text = read_text_file(path);
  return is_jsonl_name(path) ? parse_jsonl(text, path) : split_on_blank_lines(text);
}

// ---- calibration --------------------------------------------------------------------------------

namespace {

// Each document on its own, as HF's tokenizer(doc) does; documents are independent, so in parallel.
std::vector<Ids> tokenize_each(const std::vector<std::string>& documents, const Tokenizer& tokenizer) {
  std::vector<Ids> tokens(documents.size());
  at::parallel_for(0, static_cast<int64_t>(documents.size()), 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) tokens[i] = tokenizer.encode_with_specials(documents[i]);
  });
  return tokens;
}

// Documents [first, last) joined with "\n\n", tokenized as one.
struct Span {
  size_t first = 0;
  size_t last = 0;
  Ids ids;
};

class Joiner {
 public:
  Joiner(const std::vector<std::string>& documents, const std::vector<Ids>& tokens, const Tokenizer& tokenizer,
         int64_t seqlen)
      : documents_(documents), tokens_(tokens), tokenizer_(tokenizer), seqlen_(seqlen) {}

  // The shortest run of documents starting at `first` (a short one) whose joined text has more
  // than seqlen tokens, or everything left when even that is too short.
  Span join_from(size_t first) {
    Span span = make(first, estimated_end(first));
    if (is_long(span)) {
      // The estimate may overshoot: stop at the first run that is long enough.
      while (span.last > first + 2) {
        Span shorter = make(first, span.last - 1);
        if (!is_long(shorter)) break;
        span = std::move(shorter);
      }
    } else {
      while (!is_long(span) && span.last < documents_.size()) span = make(first, span.last + 1);
    }
    learn_boundary_cost(span);
    return span;
  }

  bool is_long(const Span& span) const { return static_cast<int64_t>(span.ids.size()) > seqlen_; }

 private:
  // Tokens of the parts alone: each document's own tokens, less the BOS that only the first keeps.
  int64_t parts_tokens(size_t first, size_t last) const {
    int64_t count = 0;
    for (size_t i = first; i < last; ++i) count += static_cast<int64_t>(tokens_[i].size()) - (i > first ? bos() : 0);
    return count;
  }

  // Where the parts' tokens plus the learned cost of each "\n\n" boundary first exceed seqlen: a
  // first guess close enough that only about two joined texts get tokenized per group.
  size_t estimated_end(size_t first) const {
    double count = static_cast<double>(tokens_[first].size());
    size_t last = first + 1;
    while (count <= static_cast<double>(seqlen_) && last < documents_.size()) {
      count += static_cast<double>(static_cast<int64_t>(tokens_[last].size()) - bos()) + boundary_cost_;
      ++last;
    }
    return last;
  }

  // Running mean of the extra tokens a boundary costs (the newlines, and the next document losing
  // its leading word boundary), measured on the groups joined so far.
  void learn_boundary_cost(const Span& span) {
    const auto boundaries = static_cast<int64_t>(span.last - span.first) - 1;
    if (boundaries <= 0) return;
    const int64_t extra = static_cast<int64_t>(span.ids.size()) - parts_tokens(span.first, span.last);
    extra_tokens_ += extra;
    boundaries_ += boundaries;
    boundary_cost_ = static_cast<double>(extra_tokens_) / static_cast<double>(boundaries_);
  }

  int64_t bos() const { return tokenizer_.adds_bos() ? 1 : 0; }

  Span make(size_t first, size_t last) const {
    std::string text = documents_[first];
    for (size_t i = first + 1; i < last; ++i) text += "\n\n" + documents_[i];
    return Span{first, last, tokenizer_.encode_with_specials(text)};
  }

  const std::vector<std::string>& documents_;
  const std::vector<Ids>& tokens_;
  const Tokenizer& tokenizer_;
  int64_t seqlen_;
  int64_t extra_tokens_ = 0;
  int64_t boundaries_ = 0;
  double boundary_cost_ = 0.0;
};

struct JoinedCorpus {
  std::vector<Ids> eligible;  // joined documents with more than seqlen tokens
  int64_t documents = 0;      // all joined documents, including a short tail
};

// Walks the documents in file order. A long document is moved out of `tokens` (it is never read
// again: the joiner only looks at documents from the current one onwards).
JoinedCorpus join_short_documents(const std::vector<std::string>& documents, std::vector<Ids>& tokens,
                                  const Tokenizer& tokenizer, int64_t seqlen) {
  JoinedCorpus corpus;
  Joiner joiner(documents, tokens, tokenizer, seqlen);
  size_t i = 0;
  while (i < documents.size()) {
    ++corpus.documents;
    if (static_cast<int64_t>(tokens[i].size()) > seqlen) {
      corpus.eligible.push_back(std::move(tokens[i]));
      ++i;
      continue;
    }
    Span span = joiner.join_from(i);
    if (joiner.is_long(span)) corpus.eligible.push_back(std::move(span.ids));
    i = span.last;
  }
  return corpus;
}

at::Tensor window_tensor(const std::vector<const int32_t*>& starts, int64_t seqlen) {
  at::Tensor ids = at::empty({static_cast<int64_t>(starts.size()), seqlen}, at::kLong);
  auto rows = ids.accessor<int64_t, 2>();
  for (size_t r = 0; r < starts.size(); ++r)
    for (int64_t c = 0; c < seqlen; ++c) rows[r][c] = starts[r][c];
  return ids;
}

void require_positive(int64_t value, const char* name, const std::string& source) {
  require(value > 0, source, std::string(name) + " must be positive (got " + std::to_string(value) + ")");
}

}  // namespace

CalibrationSet sample_calibration(const std::vector<std::string>& documents, const Tokenizer& tokenizer,
                                  int64_t nsamples, int64_t seqlen, uint64_t seed, const std::string& source) {
  require_positive(nsamples, "calibration sample count", source);
  require_positive(seqlen, "sequence length", source);
  std::vector<Ids> tokens = tokenize_each(documents, tokenizer);
  CalibrationSet set;
  for (const Ids& ids : tokens) set.corpus_tokens += static_cast<int64_t>(ids.size());

  JoinedCorpus corpus = join_short_documents(documents, tokens, tokenizer, seqlen);
  set.documents = corpus.documents;
  set.eligible_documents = static_cast<int64_t>(corpus.eligible.size());
  if (corpus.eligible.empty())
    throw_input_error(source, "no document has more than " + std::to_string(seqlen) +
                                  " tokens, even after joining short ones (" + std::to_string(set.corpus_tokens) +
                                  " tokens in " + std::to_string(documents.size()) + " documents)");

  // Wanda's loop: a uniformly random long-enough document, then randint(0, len - seqlen - 1).
  Rng rng(seed);
  std::vector<const int32_t*> starts;
  for (int64_t s = 0; s < nsamples; ++s) {
    const Ids& doc = corpus.eligible[rng.below(corpus.eligible.size())];
    const uint64_t start = rng.below(doc.size() - static_cast<uint64_t>(seqlen));
    starts.push_back(doc.data() + start);
  }
  set.ids = window_tensor(starts, seqlen);
  return set;
}

// ---- evaluation ---------------------------------------------------------------------------------

EvalWindows eval_windows(const std::string& text, const Tokenizer& tokenizer, int64_t seqlen, int64_t max_windows,
                         const std::string& source) {
  require_positive(seqlen, "sequence length", source);
  const Ids ids = tokenizer.encode_with_specials(text);
  EvalWindows windows;
  windows.total_tokens = static_cast<int64_t>(ids.size());
  if (windows.total_tokens < seqlen)
    throw_input_error(source, "has " + std::to_string(windows.total_tokens) + " tokens, fewer than the sequence length " +
                                  std::to_string(seqlen));
  int64_t count = windows.total_tokens / seqlen;
  if (max_windows > 0) count = std::min(count, max_windows);
  std::vector<const int32_t*> starts;
  for (int64_t w = 0; w < count; ++w) starts.push_back(ids.data() + w * seqlen);
  windows.ids = window_tensor(starts, seqlen);
  return windows;
}

}  // namespace crepe::text
