#pragma once
// The crepe command line: subcommands, option parsing, logging set-up, exit codes.
// Exit codes: 0 success, 1 internal error (a bug), 2 bad input (file, option or data), 130 interrupted.
namespace crepe::cli {

int run(int argc, char** argv);

}  // namespace crepe::cli
