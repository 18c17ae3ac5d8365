#include "crepe/cli/config_file.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
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

// The file as a JSON object. nlohmann keeps the last of two equal keys; a file that sets an option
// twice says two things, so its first repeated top-level key is an InputError instead.
nlohmann::json parse_config(const std::string& path) {
  const std::string text = read_small_file(path);
  std::set<std::string> top_level_keys;
  std::string repeated;
  const nlohmann::json::parser_callback_t watch = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && repeated.empty() &&
        !top_level_keys.insert(parsed.get<std::string>()).second) {
      repeated = parsed.get<std::string>();
    }
    return true;
  };
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(text, watch);
  } catch (const nlohmann::json::exception& e) {
    throw_input_error(path, std::string("invalid JSON: ") + e.what());
  }
  require(config.is_object(), path, "a config file must be a JSON object of option names");
  require(repeated.empty(), path + ": key '" + repeated + "'", "appears twice; give each option once");
  return config;
}

}  // namespace

void apply_config_file(CLI::App& command, const std::string& path) {
  const nlohmann::json config = parse_config(path);
  const std::set<std::string> from_command_line = set_on_command_line(command);
  std::map<std::string, std::string> key_of_option;  // "kernel-size" -> the key that set it
  for (const auto& [key, value] : config.items()) {
    if (!key.empty() && key[0] == '_') continue;  // "_search", "_calibration": records, not options
    std::string name = key;
    std::replace(name.begin(), name.end(), '_', '-');
    const std::string where = path + ": key '" + key + "'";
    require(name != "config", path, "a config file cannot name another config file");
    const auto [first, fresh] = key_of_option.emplace(name, key);
    require(fresh, where, "sets --" + name + " again (after '" + first->second + "'); give each option once");
    CLI::Option* option = nullptr;
    try {
      option = command.get_option("--" + name);
    } catch (const CLI::OptionNotFound&) {
      throw_input_error(where, "is not an option of 'crepe " + command.get_name() + "'");
    }
    // A required option always comes from the command line, so the file's value could never apply.
    require(!option->get_required(), where, "--" + name + " belongs on the command line; a config file holds settings");
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
