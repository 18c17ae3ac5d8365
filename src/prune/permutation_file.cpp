#include "crepe/prune/permutation_file.hpp"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

#include "crepe/core/error.hpp"
#include "crepe/core/files.hpp"
#include "crepe/prune/permutation.hpp"

namespace crepe::prune {
namespace {

constexpr const char* kFormat = "crepe input-channel permutation, version 1";

}  // namespace

std::string permutation_file_text(const Pattern& pattern, const std::vector<std::pair<std::string, at::Tensor>>& orders) {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["pattern"] = pattern.str();
  j["usage"] = "for each weight W [out, in] below, W[:, order] is " + pattern.str() +
               " sparse: every run of M consecutive columns holds at least N zeros in every row (the last in % M "
               "columns, which stay in place, hold at least floor(N * (in % M) / M)); apply the same order to the "
               "layer's input";
  nlohmann::ordered_json layers = nlohmann::ordered_json::object();
  for (const auto& [name, order] : orders) layers[name] = order_values(order);
  j["layers"] = std::move(layers);
  return j.dump() + "\n";
}

ChannelOrders read_permutation_file(const std::string& path) {
  const std::string text = read_small_file(path);
  ChannelOrders result;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    require(j.value("format", std::string()) == kFormat, path, std::string("is not a crepe permutation file (format \"") + kFormat + "\")");
    result.pattern = parse_pattern(j.at("pattern").get<std::string>(), path);
    require(result.pattern.structured(), path, "names no N:M pattern");
    for (const auto& [name, values] : j.at("layers").items()) {
      require(values.is_array() && std::all_of(values.begin(), values.end(), [](const nlohmann::json& v) { return v.is_number_integer(); }),
              path, "the order of " + name + " is not a list of column indices");
      const auto order = values.get<std::vector<int64_t>>();
      require(is_permutation(order, static_cast<int64_t>(order.size())), path, "the order of " + name + " is not a permutation");
      result.orders[name] = order_tensor(order);
    }
  } catch (const nlohmann::json::exception& e) {
    throw_input_error(path, std::string("invalid permutation file: ") + e.what());
  }
  return result;
}

}  // namespace crepe::prune
