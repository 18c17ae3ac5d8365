#include "biased_model.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <utility>
#include <vector>

#include "crepe/io/checkpoint.hpp"
#include "crepe/io/safetensors.hpp"

namespace crepe::test {

std::string make_biased_copy(const TempDir& dir, const std::string& source, const std::string& name) {
  namespace fs = std::filesystem;
  const std::string target = dir.file(name);
  fs::create_directories(target);
  for (const auto& entry : fs::directory_iterator(source)) {
    const std::string file = entry.path().filename().string();
    if (file != "model.safetensors" && file != "config.json") fs::copy_file(entry.path(), target + "/" + file);
  }
  auto config = nlohmann::json::parse(read_file(source + "/config.json"));
  config["attention_bias"] = true;
  config["mlp_bias"] = true;
  write_file(target + "/config.json", config.dump(2));

  const auto file = io::SafetensorsFile::open(source + "/model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& info : file->tensors()) tensors.emplace_back(info.name, file->load(info.name));
  const auto generator = at::detail::createCPUGenerator(20261129);
  for (int64_t b = 0; b < config.at("num_hidden_layers").get<int64_t>(); ++b) {
    for (model::Linear linear : model::kLinears) {
      const at::Tensor weight = file->load(io::Checkpoint::linear_weight_name(b, linear));
      const at::Tensor bias = 0.1 * at::randn({weight.size(0)}, generator, at::TensorOptions().dtype(at::kFloat));
      tensors.emplace_back(io::Checkpoint::linear_bias_name(b, linear), bias.to(weight.scalar_type()));
    }
  }
  io::write_safetensors(target + "/model.safetensors", tensors, {{"format", "pt"}});
  return target;
}

}  // namespace crepe::test
