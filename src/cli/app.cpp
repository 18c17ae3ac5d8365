#include "crepe/cli/app.hpp"

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <thread>
#include <iostream>

#include "crepe/cli/commands.hpp"
#include "crepe/core/device.hpp"
#include "crepe/core/error.hpp"
#include "crepe/core/interrupt.hpp"
#include "crepe/core/progress.hpp"

namespace crepe::cli {
namespace {

// Output that never reached stdout (a full disk, a file size limit, a closed descriptor) must not
// end with exit code 0, as if the JSON or the token ids were complete.
int with_output_checked(int code) {
  errno = 0;
  std::cout.flush();
  const bool failed = std::fflush(stdout) != 0 || std::ferror(stdout) != 0 || std::cout.fail();
  if (!failed || code != 0) return code;
  std::fprintf(stderr, "crepe: error: standard output: the output could not be written completely%s%s\n",
               errno != 0 ? ": " : "", errno != 0 ? std::strerror(errno) : "");
  return 2;
}

// All logging goes to stderr: stdout carries results only (and exactly one JSON document with --json).
void setup_logging(const std::string& level, bool quiet) {
  auto logger = spdlog::stderr_color_mt("crepe");
  logger->set_pattern("[%H:%M:%S] %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(quiet ? spdlog::level::warn : spdlog::level::from_str(level));
  set_progress_enabled(!quiet);
}

void add_device_options_impl(CLI::App& command, DeviceOptions& options) {
  command.add_option("--device", options.device, "cpu, cuda or cuda:N")->capture_default_str();
  command.add_option("--dtype", options.dtype, "forward-pass dtype: fp32 (CPU), bf16/fp16/fp32 (CUDA)")
      ->capture_default_str();
  command.add_option("--batch-size", options.batch_size, "sequences per forward call (0: from a memory budget)")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  command.add_option("--max-device-activations", options.max_device_activations_gib,
                     "GiB of hidden states kept on the device; more stay in pinned host memory")
      ->check(CLI::Range(0.0, 1e6))  // NaN fails a range check only by accident: refused below
      ->check([](const std::string& text) {
        try {
          return std::isfinite(std::stod(text)) ? std::string() : std::string("must be a finite number of GiB");
        } catch (const std::exception&) {
          return std::string("must be a number of GiB");
        }
      })
      ->capture_default_str();
}

}  // namespace

std::string& command_line() {
  static std::string line;
  return line;
}

void add_device_options(CLI::App& command, DeviceOptions& options) { add_device_options_impl(command, options); }

void add_seed_option(CLI::App& command, uint64_t& seed, const std::string& description) {
  const CLI::Validator whole_number(
      [](std::string& text) -> std::string {
        const bool digits = !text.empty() && text.size() <= 20 && text.find_first_not_of("0123456789") == std::string::npos;
        if (digits && (text.size() < 20 || text <= "18446744073709551615")) return "";
        return "must be a whole number from 0 to 18446744073709551615, got " + text;
      },
      "UINT64");
  command.add_option("--seed", seed, description)->check(whole_number)->capture_default_str();
}

engine::RunnerOptions runner_options(const DeviceOptions& options) {
  engine::RunnerOptions run;
  run.placement = make_placement(options.device, options.dtype);
  run.batch_size = options.batch_size;
  run.max_device_activation_bytes = static_cast<int64_t>(options.max_device_activations_gib * double(int64_t{1} << 30));
  // On a GPU the next block's read and pinned staging overlap the current block's compute; on a
  // CPU the staging thread would only compete with the compute threads for the same cores.
  run.prefetch = run.placement.device.is_cuda();
  return run;
}

void print_json(const std::string& document) {
  std::fwrite(document.data(), 1, document.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

bool takes_whole_number(const CLI::Option& option) {
  const std::string type = option.get_type_name();
  return type.rfind("INT", 0) == 0 || type.rfind("UINT", 0) == 0;
}

namespace {

// A count given as 4.7 is a mistake to name, not a value "not in range" (CLI11's words for it):
// every whole-number option of every command checks for it first.
void require_whole_numbers(CLI::App& app) {
  const CLI::Validator whole_number(
      [](std::string& text) -> std::string {
        if (text.find_first_not_of("+-0123456789") == std::string::npos) return "";
        char* end = nullptr;
        std::strtod(text.c_str(), &end);
        const bool a_number = !text.empty() && end != nullptr && *end == '\0';
        return a_number ? "must be a whole number in digits, got " + text : "";  // anything else: CLI11's own message
      },
      "");
  for (CLI::App* command : app.get_subcommands([](CLI::App*) { return true; })) {
    for (CLI::Option* option : command->get_options([](CLI::Option*) { return true; })) {
      if (takes_whole_number(*option)) option->transform(whole_number);
    }
  }
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"crepe: post-training pruning of LLaMA-family models (CRePE, RIA, Wanda, SparseGPT)", "crepe"};
  app.require_subcommand(1);
  app.fallthrough();  // global options (-q, --log-level) may follow the subcommand too
  app.set_version_flag("--version", std::string("crepe ") + CREPE_VERSION);
  std::string log_level = "info";
  bool quiet = false;
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_flag("-q,--quiet", quiet, "only warnings and errors on stderr, no progress bars");
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Bounded: OpenMP allocates per-thread state up front (2^31 threads asked it for 480 GB), and
  // far more threads than cores only slow the work down.
  app.add_option("--threads", threads, "CPU threads for tensor work, 1 to 1024 (default: all cores)")
      ->check(CLI::Range(1, 1024));

  // Added in the order `crepe --help` lists them (a braced list is evaluated left to right).
  const std::map<std::string, Action> commands = {{"inspect", add_inspect_command(app)}, {"eval", add_eval_command(app)},
                                                  {"tokenize", add_tokenize_command(app)}, {"prune", add_prune_command(app)},
                                                  {"search", add_search_command(app)}};
  require_whole_numbers(app);
  for (int i = 0; i < argc; ++i) command_line() += (i ? " " : "") + std::string(argv[i]);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    if (app.get_subcommands().empty() && std::string(e.what()).find("subcommand is required") != std::string::npos) {
      // No command was recognised: name what stood where it should have been.
      const std::string first = argc > 1 ? argv[1] : "";
      const std::string what = first.empty()         ? std::string("no command given")
                               : first[0] != '-'     ? "unknown command '" + first + "'"
                               : argc == 2 && first != "-q" && first != "--quiet" ? "unknown option '" + first + "' and no command"
                                                     : std::string("no command given");
      std::fprintf(stderr, "crepe: error: %s (expected inspect, eval, tokenize, prune or search)\n", what.c_str());
      return 2;
    }
    // A bad command line is bad input like any other: one line, house format (CLI11's own printer
    // adds a second "Run with --help" line).
    std::string message = e.what();
    std::replace(message.begin(), message.end(), '\n', ' ');
    // CLI11's words for an option given twice ("--out: At Most 1 required but received 2").
    const size_t twice = message.find(": At Most 1 required but received");
    if (twice != std::string::npos) message = message.substr(0, twice) + ": given more than once";
    std::fprintf(stderr, "crepe: error: %s\n", message.c_str());
    return 2;
  }
  setup_logging(log_level, quiet);
  // LibTorch as packaged by Debian starts with one intra-op thread; crepe's work is all tensor ops.
  at::set_num_threads(threads);
  try {
    // An empty value (an unset shell variable) would read as "not given" and silently change the
    // run: --calib-data "" would calibrate on self-generated text.
    for (CLI::App* sub : app.get_subcommands()) {
      for (const CLI::Option* option : sub->get_options()) {
        if (option->count() == 0 || option->get_expected_min() == 0) continue;  // absent, or a flag
        for (const std::string& value : option->results()) {
          require(!value.empty(), option->get_name(), "needs a value, got an empty string");
        }
      }
    }
    for (CLI::App* sub : app.get_subcommands()) {
      // Only the commands that check for a stop at safe points catch the signals; the others
      // (inspect, tokenize) keep the default action and end at once.
      const std::string name = sub->get_name();
      if (name == "eval" || name == "prune" || name == "search") install_interrupt_handler();
      const auto command = commands.find(name);
      if (command != commands.end()) return with_output_checked(command->second());
    }
    return 2;
  } catch (const Interrupted&) {
    std::fprintf(stderr, "crepe: interrupted\n");
    return interrupt_exit_code();
  } catch (const InputError& e) {
    std::fprintf(stderr, "crepe: error: %s\n", e.what());
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    // The system refused a path (a symlink loop, a permission): what() names the paths involved.
    std::fprintf(stderr, "crepe: error: %s\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "crepe: internal error (LibTorch): %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crepe: internal error: %s\n", e.what());
    return 1;
  }
}

}  // namespace crepe::cli
