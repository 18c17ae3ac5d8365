#pragma once
// `--config FILE`: a JSON object whose keys are a command's option names without the leading dashes
// ("sparsity", "kernel-size"; "kernel_size" is accepted too). Values fill only the options the
// command line left unset: the command line wins, and a target given there replaces the file's
// whichever way the file states it (--sparsity replaces a pattern, an N:M --pattern a sparsity). Keys starting with '_'
// are records, not options (crepe search's "_search"). Unknown keys, ill-typed values, an option
// set twice (a repeated key, or "kernel_size" beside "kernel-size") and the options the command
// line must give (--model, --out) are InputErrors naming the file and the key.
#include <string>

namespace CLI {
class App;
}

namespace crepe::cli {

void apply_config_file(CLI::App& command, const std::string& path);

}  // namespace crepe::cli
