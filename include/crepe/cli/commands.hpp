#pragma once
// Subcommands of the crepe CLI. Each registers its options on a CLI11 app and returns the action
// to run once parsing succeeded; actions throw InputError for bad input and return an exit code.
#include <functional>
#include <string>

#include "crepe/engine/runner.hpp"

namespace CLI {
class App;
class Option;
}

namespace crepe::cli {

using Action = std::function<int()>;

Action add_inspect_command(CLI::App& app);
Action add_eval_command(CLI::App& app);
Action add_tokenize_command(CLI::App& app);
Action add_prune_command(CLI::App& app);
Action add_search_command(CLI::App& app);

// The command line as typed, for reports.
std::string& command_line();

// Options shared by commands that run the model.
struct DeviceOptions {
  std::string device = "cpu";
  std::string dtype = "fp32";
  int64_t batch_size = 0;
  double max_device_activations_gib = 16;
};
void add_device_options(CLI::App& command, DeviceOptions& options);
// --seed: a whole number from 0 to 2^64 - 1, written in decimal digits (CLI11 would wrap -1 and
// saturate anything larger).
void add_seed_option(CLI::App& command, uint64_t& seed, const std::string& description);
// Whether an option holds a whole number (CLI11's INT and UINT types): a value such as 4.7 is then
// refused as "must be a whole number", on the command line and in --config files alike.
bool takes_whole_number(const CLI::Option& option);
// The engine's options for those (placement checked: InputError naming --device or --dtype).
engine::RunnerOptions runner_options(const DeviceOptions& options);

// Writes one JSON document to stdout (the only thing a --json run prints there).
void print_json(const std::string& document);

}  // namespace crepe::cli
