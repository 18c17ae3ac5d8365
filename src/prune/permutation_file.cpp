#include "crepe/prune/permutation_file.hpp"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

#include "crepe/core/error.hpp"

namespace crepe::prune {
namespace {

constexpr const char* kFormat = "crepe input-channel permutation, version 1";

std::vector<int64_t> values_of(const at::Tensor& order) {
  const at::Tensor cpu = order.to(at::kCPU, at::kLong).contiguous();
  return {cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel()};
}

}  // namespace

bool is_permutation(const std::vector<int64_t>& order, int64_t n) {
  if (static_cast<int64_t>(order.size()) != n) return false;
  std::vector<char> seen(static_cast<size_t>(n), 0);
  for (int64_t c : order) {
    if (c < 0 || c >= n || seen[static_cast<size_t>(c)]) return false;
    seen[static_cast<size_t>(c)] = 1;
  }
  return true;
}

std::string permutation_file_text(const Pattern& pattern, const std::vector<std::pair<std::string, at::Tensor>>& orders) {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["pattern"] = pattern.str();
  j["usage"] = "for each weight W [out, in] below, W[:, order] is " + pattern.str() +
               " sparse: every run of M consecutive columns holds at least N zeros in every row (the last in % M "
               "columns, which stay in place, hold at least floor(N * (in % M) / M)); apply the same order to the "
               "layer's input";
  nlohmann::ordered_json layers = nlohmann::ordered_json::object();
  for (const auto& [name, order] : orders) layers[name] = values_of(order);
  j["layers"] = std::move(layers);
  return j.dump() + "\n";
}

ChannelOrders read_permutation_file(const std::string& path) {
  std::ifstream in(path);
  require(static_cast<bool>(in), path, "cannot be read");
  ChannelOrders result;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    require(j.value("format", std::string()) == kFormat, path, std::string("is not a crepe permutation file (format \"") + kFormat + "\")");
    result.pattern = parse_pattern(j.at("pattern").get<std::string>(), path);
    require(result.pattern.structured(), path, "names no N:M pattern");
    for (const auto& [name, values] : j.at("layers").items()) {
      require(values.is_array() && std::all_of(values.begin(), values.end(), [](const nlohmann::json& v) { return v.is_number_integer(); }),
              path, "the order of " + name + " is not a list of column indices");
      const auto order = values.get<std::vector<int64_t>>();
      require(is_permutation(order, static_cast<int64_t>(order.size())), path, "the order of " + name + " is not a permutation");
      result.orders[name] = at::tensor(c10::ArrayRef<int64_t>(order), at::kLong);
    }
  } catch (const nlohmann::json::exception& e) {
    throw_input_error(path, std::string("invalid permutation file: ") + e.what());
  }
  return result;
}

}  // namespace crepe::prune
