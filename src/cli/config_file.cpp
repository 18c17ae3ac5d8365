#include "crepe/cli/config_file.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <string>

#include "crepe/cli/commands.hpp"
#include "crepe/core/error.hpp"
#include "crepe/core/files.hpp"

namespace crepe::cli {
namespace {

std::string as_option_value(const nlohmann::json& value, const std::string& where) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number_unsigned()) return std::to_string(value.get<uint64_t>());  // a seed may pass 2^63
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  if (value.is_number()) {
    std::ostringstream out;
    out.precision(17);
    out << value.get<double>();
    return out.str();
  }
  throw_input_error(where, "expected a string, number or boolean, got " + value.dump());
}

// The option names (without dashes) the file must leave alone: those the command line gave, and the
// file's half of the target when the command line states the target the other way: an N:M
// --pattern replaces the file's sparsity, a --sparsity the file's pattern (--pattern unstructured
// keeps the file's sparsity: it asks for no particular one).
std::set<std::string> set_on_command_line(const CLI::App& command) {
  std::set<std::string> names;
  for (const CLI::Option* option : command.get_options()) {
    if (option->count() > 0 && !option->get_lnames().empty()) names.insert(option->get_lnames().front());
  }
  if (names.count("sparsity") > 0) names.insert("pattern");
  if (names.count("pattern") > 0 && command.get_option("--pattern")->as<std::string>() != "unstructured") {
    names.insert("sparsity");
  }
  return names;
}

}  // namespace

void apply_config_file(CLI::App& command, const std::string& path) {
  const std::string text = read_small_file(path);
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw_input_error(path, std::string("invalid JSON: ") + e.what());
  }
  require(config.is_object(), path, "a config file must be a JSON object of option names");
  const std::set<std::string> from_command_line = set_on_command_line(command);
  for (const auto& [key, value] : config.items()) {
    if (!key.empty() && key[0] == '_') continue;  // "_search", "_calibration": records, not options
    std::string name = key;
    std::replace(name.begin(), name.end(), '_', '-');
    const std::string where = path + ": key '" + key + "'";
    require(name != "config", path, "a config file cannot name another config file");
    CLI::Option* option = nullptr;
    try {
      option = command.get_option("--" + name);
    } catch (const CLI::OptionNotFound&) {
      throw_input_error(where, "is not an option of 'crepe " + command.get_name() + "'");
    }
    if (from_command_line.count(name) > 0 || option->count() > 0) continue;  // the command line wins
    // CLI11 would report 4.7 for a count as "not in range"; say what is wrong with it.
    require(!takes_whole_number(*option) || !value.is_number_float() || value.get<double>() == std::floor(value.get<double>()), where,
            "must be a whole number, got " + value.dump());
    option->add_result(as_option_value(value, where));
    try {
      option->run_callback();
    } catch (const CLI::Error& e) {
      throw_input_error(where, e.what());
    }
  }
}

}  // namespace crepe::cli
