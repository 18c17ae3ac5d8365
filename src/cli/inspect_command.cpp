// `crepe inspect --model DIR`: what a checkpoint is, from its config and safetensors headers alone.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>
#include <map>
#include <memory>

#include "crepe/cli/commands.hpp"
#include "crepe/io/checkpoint.hpp"

namespace crepe::cli {
namespace {

struct InspectOptions {
  std::string model;
  bool json = false;
};

nlohmann::ordered_json describe(const io::Checkpoint& ckpt) {
  const auto& c = ckpt.config();
  const auto& store = ckpt.tensors();
  std::map<std::string, int64_t> params_by_dtype;
  for (const auto& name : store.names()) {
    const auto& info = store.info(name);
    params_by_dtype[io::dtype_to_string(info.dtype)] += info.numel();
  }
  nlohmann::ordered_json j;
  j["model"] = ckpt.dir();
  j["architecture"] = c.architecture;
  j["layers"] = c.num_layers;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["attention_heads"] = c.num_heads;
  j["kv_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["parameters"] = ckpt.parameter_count();
  j["prunable_parameters"] = ckpt.linear_parameter_count();
  j["parameters_by_dtype"] = params_by_dtype;
  j["tensors"] = store.names().size();
  j["shards"] = store.shard_files();
  return j;
}

void print_text(const nlohmann::ordered_json& j) {
  auto millions = [](int64_t n) { return std::to_string(n) + " (" + std::to_string(n / 100000 / 10.0).substr(0, 6) + "M)"; };
  std::cout << "model          " << j["model"].get<std::string>() << "\n"
            << "architecture   " << j["architecture"].get<std::string>() << "\n"
            << "layers         " << j["layers"] << ", hidden " << j["hidden_size"] << ", MLP "
            << j["intermediate_size"] << "\n"
            << "attention      " << j["attention_heads"] << " heads / " << j["kv_heads"] << " KV heads, head_dim "
            << j["head_dim"] << ", rope_theta " << j["rope_theta"] << "\n"
            << "vocab          " << j["vocab_size"] << (j["tie_word_embeddings"].get<bool>() ? " (tied embeddings)" : "")
            << ", context " << j["max_position_embeddings"] << "\n"
            << "parameters     " << millions(j["parameters"].get<int64_t>()) << ", prunable "
            << millions(j["prunable_parameters"].get<int64_t>()) << "\n"
            << "dtypes        ";
  for (const auto& [dtype, count] : j["parameters_by_dtype"].items()) std::cout << " " << dtype << ": " << count;
  std::cout << "\nshards         " << j["shards"].size() << " file(s), " << j["tensors"] << " tensors\n";
}

}  // namespace

Action add_inspect_command(CLI::App& app) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "Show a checkpoint's architecture, parameter counts, dtypes and shards");
  cmd->add_option("--model", options->model, "Hugging Face model directory")->required();
  cmd->add_flag("--json", options->json, "print one JSON document on stdout");
  return [options]() {
    const io::Checkpoint ckpt = io::Checkpoint::open(options->model);
    const auto description = describe(ckpt);
    if (options->json) {
      print_json(description.dump(2));
    } else {
      print_text(description);
    }
    return 0;
  };
}

}  // namespace crepe::cli
