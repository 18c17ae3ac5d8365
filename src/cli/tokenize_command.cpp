// `crepe tokenize`: text on stdin -> token ids on stdout, or (--decode) ids -> text.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "crepe/cli/commands.hpp"
#include "crepe/core/error.hpp"
#include "crepe/text/tokenizer.hpp"

namespace crepe::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string tokenizer;
  std::string kind = "auto";
  bool no_bos = false;
  bool decode = false;
};

// All of standard input; one that cannot be read (a directory, a closed descriptor) is an error,
// not an empty text that would still print a BOS id.
std::string read_stdin() {
  std::string text;
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_input_error("standard input", std::string("cannot be read: ") + std::strerror(errno));
    if (n == 0) return text;
    text.append(chunk, static_cast<size_t>(n));
  }
}

void write_stdout(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::istringstream words(text);
  for (std::string word; words >> word;) {
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || value < INT32_MIN || value > INT32_MAX)
      throw_input_error("stdin", "\"" + word + "\" is not a token id");
    ids.push_back(static_cast<int32_t>(value));
  }
  return ids;
}

}  // namespace

Action add_tokenize_command(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Text on stdin to token ids on stdout (or back, with --decode)");
  auto* model = cmd->add_option("--model", options->model, "model directory (tokenizer.json or tokenizer.model)");
  auto* file = cmd->add_option("--tokenizer", options->tokenizer, "a tokenizer.json or tokenizer.model file");
  model->excludes(file);
  cmd->add_option("--kind,--tokenizer-kind", options->kind, "which tokenizer file: auto (tokenizer.json first), json or model")
      ->capture_default_str();
  cmd->add_flag("--no-bos", options->no_bos, "leave BOS out even where the tokenizer adds it");
  cmd->add_flag("--decode", options->decode, "read whitespace-separated ids on stdin and print their text");

  return [options]() {
    const text::TokenizerKind kind = text::parse_tokenizer_kind(options->kind, "--kind");
    if (options->model.empty() && options->tokenizer.empty())
      throw_input_error("tokenize", "give --model DIR or --tokenizer FILE");
    const auto tokenizer = options->model.empty() ? text::load_tokenizer_file(options->tokenizer, kind)
                                                  : text::load_tokenizer(options->model, kind);
    const std::string input = read_stdin();
    if (options->decode) {
      write_stdout(tokenizer->decode(parse_ids(input)));
      return 0;
    }
    const std::vector<int32_t> ids = tokenizer->encode_with_specials(input, tokenizer->adds_bos() && !options->no_bos);
    std::string out;
    out.reserve(ids.size() * 7 + 1);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out += ' ';
      out += std::to_string(ids[i]);
    }
    out += '\n';
    write_stdout(out);
    return 0;
  };
}

}  // namespace crepe::cli
