// `crepe prune` end to end: what lands on disk, what never does, and what the user is told.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <functional>
#include <set>

#include "crepe/io/checkpoint.hpp"
#include "crepe/io/safetensors.hpp"
#include "crepe/prune/mask.hpp"
#include "biased_model.hpp"
#include "test_support.hpp"

namespace crepe {
namespace {

namespace fs = std::filesystem;
using test::read_file;
using test::run_crepe;
using test::shared_path;

std::vector<std::string> prune_args(const std::string& model, const std::string& out, std::vector<std::string> extra) {
  std::vector<std::string> args = {"prune", "--model", model, "--out", out, "--calib-data",
                                   shared_path("data/tinystories-val.txt"), "--nsamples", "8", "--seqlen", "64", "-q"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// crepe run with CREPE_TEST_STOP_AFTER_BLOCK=stop: it signals itself after that block ("1:int":
// SIGINT after block 1; see prune_command.cpp's maybe_stop_for_test).
test::CommandResult run_stopped(const std::string& stop, const std::vector<std::string>& args) {
  setenv("CREPE_TEST_STOP_AFTER_BLOCK", stop.c_str(), 1);
  test::CommandResult result = run_crepe(args);
  unsetenv("CREPE_TEST_STOP_AFTER_BLOCK");
  return result;
}

// A writable copy of the shared stories260k model in dir/name (tests that alter or rename it).
std::string stories_copy(const test::TempDir& dir, const std::string& name) {
  const std::string copy = dir.file(name);
  std::filesystem::create_directories(copy);
  for (const auto& entry : std::filesystem::directory_iterator(test::shared_path("models/stories260k"))) {
    std::filesystem::copy_file(entry.path(), copy + "/" + entry.path().filename().string());
  }
  return copy;
}

TEST(PruneCli, SparsityZeroIsAByteIdenticalRoundTrip) {
  test::TempDir dir;
  const std::string model = shared_path("models/mini-llama-6m");
  const auto r = run_crepe(prune_args(model, dir.file("out"), {"--sparsity", "0"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(dir.file("out/model.safetensors")), read_file(model + "/model.safetensors"));
  for (const char* file : {"config.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json"}) {
    EXPECT_EQ(read_file(dir.file(std::string("out/") + file)), read_file(model + "/" + file)) << file;
  }
}

TEST(PruneCli, WritesAMirroredCheckpointWithExactSparsityAndAReport) {
  test::TempDir dir;
  const std::string model = shared_path("models/mini-llama-6m");
  const auto r = run_crepe(prune_args(model, dir.file("out"), {"--method", "ria", "--sparsity", "0.6", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto stdout_report = nlohmann::json::parse(r.out);
  const auto report = nlohmann::json::parse(read_file(dir.file("out/crepe_report.json")));
  EXPECT_EQ(stdout_report, report);
  EXPECT_EQ(report.at("hyperparameters").at("method"), "ria");
  EXPECT_EQ(report.at("hyperparameters").at("group"), "layer");
  EXPECT_EQ(report.at("calibration").at("nsamples"), 8);
  EXPECT_EQ(report.at("calibration").at("tokens"), 8 * 64);
  EXPECT_EQ(report.at("sparsity").at("tensors").size(), 42u);
  EXPECT_FALSE(fs::exists(dir.file("out/crepe_permutation.json")));  // only with --permute

  // Its card says what it is, and keeps the dense model's card below a heading that says whose it is.
  const std::string card = read_file(dir.file("out/README.md"));
  EXPECT_EQ(card.rfind("---\n", 0), 0u) << card;
  EXPECT_NE(card.find("# mini-llama-6m, pruned with crepe"), std::string::npos) << card;
  EXPECT_NE(card.find("method ria (unstructured, group layer), calibrated on `tinystories-val.txt`"), std::string::npos) << card;
  const std::string original = read_file(model + "/README.md");
  const size_t kept = card.find("## The original model's card");
  ASSERT_NE(kept, std::string::npos);
  EXPECT_NE(card.find(original.substr(0, 40), kept), std::string::npos);

  const auto source = io::Checkpoint::open(model);
  const auto pruned = io::Checkpoint::open(dir.file("out"));  // it loads like the original
  EXPECT_EQ(pruned.tensors().names(), source.tensors().names());
  for (const std::string& name : source.tensors().names()) {
    const auto& info = source.tensors().info(name);
    EXPECT_EQ(pruned.tensors().info(name).dtype, info.dtype) << name;
    EXPECT_EQ(pruned.tensors().info(name).shape, info.shape) << name;
    const at::Tensor before = source.tensors().load(name).to(at::kFloat);
    const at::Tensor after = pruned.tensors().load(name).to(at::kFloat);
    if (name.find("_proj.weight") == std::string::npos) {
      EXPECT_TRUE(at::equal(before, after)) << name << " must be untouched";
      continue;
    }
    const at::Tensor zeroed = (after == 0).logical_and(before != 0);
    EXPECT_EQ(zeroed.sum().item<int64_t>(), prune::pruned_count(0.6, info.numel())) << name;
    EXPECT_TRUE(at::equal(after.masked_select(after != 0), before.masked_select(after != 0))) << name;
  }
}

// --base-model names the card's base model where crepe cannot tell it (a local copy whose
// config.json does not record the hub id); a value that is not a hub id is refused before any work.
TEST(PruneCli, BaseModelOptionNamesTheCardsBaseModel) {
  test::TempDir dir;
  const std::string model = shared_path("models/stories260k");
  const auto given = run_crepe(prune_args(model, dir.file("out"), {"--sparsity", "0", "--base-model", "karpathy/tinyllamas"}));
  ASSERT_EQ(given.exit_code, 0) << given.err;
  const std::string card = read_file(dir.file("out/README.md"));
  EXPECT_EQ(card.rfind("---\nbase_model: karpathy/tinyllamas\n", 0), 0u) << card;

  const auto bad = run_crepe(prune_args(model, dir.file("bad"), {"--base-model", "../my model"}));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--base-model: '../my model' is not a Hugging Face hub id"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir.file("bad")));
}

// DSnoT, as its reference runs by default, re-prunes the attention projections and leaves the MLP
// with the method's mask; --dsnot-skip none re-prunes all seven. The report records which.
TEST(PruneCli, DsnotSkipsTheMlpByDefault) {
  test::TempDir dir;
  const std::string model = shared_path("models/stories260k");
  for (const auto& [out, extra] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"plain", {}}, {"dsnot", {"--reprune", "dsnot"}}, {"all", {"--reprune", "dsnot", "--dsnot-skip", "none"}}}) {
    std::vector<std::string> args = {"--method", "wanda", "--sparsity", "0.6", "--dsnot-threshold", "0"};
    if (extra.empty()) args = {"--method", "wanda", "--sparsity", "0.6"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_crepe(prune_args(model, dir.file(out), args));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const auto report = nlohmann::json::parse(read_file(dir.file("dsnot/crepe_report.json")));
  EXPECT_EQ(report.at("hyperparameters").at("dsnot").at("skip"), "mlp");
  const auto plain = io::Checkpoint::open(dir.file("plain"));
  const auto dsnot = io::Checkpoint::open(dir.file("dsnot"));
  const auto all = io::Checkpoint::open(dir.file("all"));
  // Block 0 only: its statistics come from the same dense inputs in all three runs (later blocks
  // see the outputs of blocks pruned differently).
  for (const std::string& name : plain.tensors().names()) {
    if (name.find("_proj.weight") == std::string::npos || name.rfind("model.layers.0.", 0) != 0) continue;
    const bool mlp = name.find(".mlp.") != std::string::npos;
    const at::Tensor kept = plain.tensors().load(name) != 0;
    EXPECT_EQ(at::equal(kept, dsnot.tensors().load(name) != 0), mlp) << name;
    EXPECT_FALSE(at::equal(kept, all.tensors().load(name) != 0)) << name;
  }
}

// An all-zero linear layer (a pruned-away or untrained projection) has no spectrum to fit:
// AlphaPruning leaves it out of its block's exponent, says so, and the run completes, as with the
// other allocations. The layer stays all zero.
TEST(PruneCli, AnAllZeroLayerPrunesWithEveryAllocation) {
  test::TempDir dir;
  const std::string model = stories_copy(dir, "model");
  const std::string zeroed = "model.layers.1.self_attn.o_proj.weight";
  const io::TensorStore store = io::TensorStore::open_dir(model);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const std::string& name : store.names()) {
    const at::Tensor t = store.load(name);
    tensors.emplace_back(name, name == zeroed ? at::zeros_like(t) : t);
  }
  io::write_safetensors(model + "/model.safetensors", tensors);
  for (const char* allocation : {"alpha", "owl", "dlp"}) {
    const std::string out = dir.file(std::string("out-") + allocation);
    const auto r = run_crepe(prune_args(model, out, {"--sparsity", "0.5", "--method", "wanda", "--allocation", allocation}));
    ASSERT_EQ(r.exit_code, 0) << allocation << ": " << r.err;
    if (std::string(allocation) == "alpha") {
      EXPECT_NE(r.err.find(zeroed + ": its spectrum has no tail to fit"), std::string::npos) << r.err;
    }
    EXPECT_EQ(io::TensorStore::open_dir(out).load(zeroed).count_nonzero().item<int64_t>(), 0) << allocation;
  }
}

// A tensor inside a block that LlamaForCausalLM has no place for is not used (nor would
// transformers use it) and is said to be so; an old export's rotary_emb.inv_freq passes silently.
TEST(PruneCli, UnknownBlockTensorsAreNamedInAWarning) {
  test::TempDir dir;
  const std::string model = stories_copy(dir, "model");
  const io::TensorStore store = io::TensorStore::open_dir(model);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const std::string& name : store.names()) tensors.emplace_back(name, store.load(name));
  tensors.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", at::ones({4}));
  io::write_safetensors(model + "/model.safetensors", tensors);
  auto r = run_crepe({"inspect", "--model", model});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("have no place"), std::string::npos) << r.err;

  tensors.emplace_back("model.layers.1.self_attn.q_norm.weight", at::ones({8}));
  io::write_safetensors(model + "/model.safetensors", tensors);
  r = run_crepe({"inspect", "--model", model});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(model + ": 1 tensor(s) in the blocks have no place in LlamaForCausalLM "
                       "('model.layers.1.self_attn.q_norm.weight'): not used, and copied unchanged"),
            std::string::npos) << r.err;
}

// A shard may hold a tensor its index does not list (the reader ignores it, as Hugging Face does):
// the output still mirrors the shard, with that tensor byte-identical, and the run completes.
TEST(PruneCli, ShardTensorsTheIndexDoesNotListPassThrough) {
  test::TempDir dir;
  const std::string source = shared_path("models/stories260k");
  const std::string model = dir.file("model");
  fs::create_directory(model);
  for (const char* file : {"config.json", "tokenizer.model"}) fs::copy_file(source + "/" + file, model + "/" + file);
  const io::TensorStore store = io::TensorStore::open_dir(source);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  const std::string shard = "model-00001-of-00001.safetensors";
  for (const std::string& name : store.names()) {
    tensors.emplace_back(name, store.load(name));
    index["weight_map"][name] = shard;
  }
  const at::Tensor stray = at::arange(6, at::kFloat);
  tensors.emplace_back("stray.weight", stray);
  io::write_safetensors(model + "/" + shard, tensors);
  test::write_file(model + "/model.safetensors.index.json", index.dump(2));

  const auto r = run_crepe(prune_args(model, dir.file("out"), {"--sparsity", "0.5", "--method", "magnitude"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const io::TensorStore out = io::TensorStore::open_dir(dir.file("out"));
  ASSERT_TRUE(out.shard(0).contains("stray.weight"));
  EXPECT_TRUE(at::equal(out.shard(0).load("stray.weight"), stray));
  EXPECT_EQ(out.names(), store.names());
}

// More calibration windows than memory can hold is the user's request, refused up front with what
// it would take, not a failed allocation deep in a run.
TEST(PruneCli, CalibrationThatCannotFitInMemoryIsRefused) {
  test::TempDir dir;
  std::vector<std::string> args = prune_args(shared_path("models/stories260k"), dir.file("out"), {});
  args[std::find(args.begin(), args.end(), "--nsamples") - args.begin() + 1] = "1000000000000";
  const auto r = run_crepe(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--nsamples: 1000000000000 windows of 64 tokens need"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir.file("out")));
}

TEST(PruneCli, TwoFourPatternHoldsInEveryGroupOfTheWrittenModel) {
  test::TempDir dir;
  const auto r = run_crepe(prune_args(shared_path("models/stories260k"), dir.file("out"), {"--pattern", "2:4"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto pruned = io::Checkpoint::open(dir.file("out"));
  for (int64_t b = 0; b < pruned.num_layers(); ++b) {
    for (model::Linear l : model::kLinears) {
      const at::Tensor W = pruned.tensors().load(io::Checkpoint::linear_weight_name(b, l));
      const at::Tensor zeros_per_group = (W == 0).view({W.size(0), -1, 4}).sum(-1);
      EXPECT_TRUE((zeros_per_group >= 2).all().item<bool>()) << b << " " << model::short_name(l);
    }
  }
  // What `inspect --sparsity` says of it (2:4 implies 4:8), and of the dense model.
  const auto inspected = run_crepe({"inspect", "--model", dir.file("out"), "--sparsity", "--json"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  const auto sparsity = nlohmann::json::parse(inspected.out).at("sparsity");
  EXPECT_EQ(sparsity.at("n_m"), nlohmann::json::array({"2:4", "4:8"}));
  EXPECT_TRUE(sparsity.at("channel_orders").is_null());
  EXPECT_EQ(sparsity.at("total").get<int64_t>(), pruned.linear_parameter_count());
  EXPECT_GE(sparsity.at("overall").get<double>(), 0.5);
  EXPECT_LT(sparsity.at("overall").get<double>(), 0.51);
  const auto text = run_crepe({"inspect", "--model", dir.file("out"), "--sparsity"});
  EXPECT_NE(text.out.find("2:4, 4:8 in every linear layer (in the stored channel order)"), std::string::npos) << text.out;
  const auto dense = run_crepe({"inspect", "--model", shared_path("models/stories260k"), "--sparsity", "--json"});
  ASSERT_EQ(dense.exit_code, 0) << dense.err;
  EXPECT_EQ(nlohmann::json::parse(dense.out).at("sparsity").at("n_m"), nlohmann::json::array());
  EXPECT_LT(nlohmann::json::parse(dense.out).at("sparsity").at("overall").get<double>(), 0.01);
}

TEST(PruneCli, ConfigFileFillsOptionsAndTheCommandLineWins) {
  test::TempDir dir;
  test::write_file(dir.file("found.json"), R"({"method": "crepe", "sparsity": 0.7, "kernel_size": 5, "gamma": 0.25})");
  const auto r = run_crepe(prune_args(shared_path("models/stories260k"), dir.file("out"),
                                      {"--config", dir.file("found.json"), "--sparsity", "0.4", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto h = nlohmann::json::parse(r.out).at("hyperparameters");
  EXPECT_EQ(h.at("method"), "crepe");
  EXPECT_EQ(h.at("kernel_size"), 5);
  EXPECT_EQ(h.at("gamma"), 0.25);
  EXPECT_DOUBLE_EQ(h.at("sparsity").get<double>(), 0.4);

  test::write_file(dir.file("bad.json"), R"({"sparsity": 0.5, "temperature": 2})");
  const auto bad = run_crepe(prune_args(shared_path("models/stories260k"), dir.file("out2"), {"--config", dir.file("bad.json")}));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("temperature"), std::string::npos);
  EXPECT_NE(bad.err.find("bad.json"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir.file("out2")));

  test::write_file(dir.file("fraction.json"), R"({"kernel_size": 4.7})");
  const auto fraction = run_crepe(prune_args(shared_path("models/stories260k"), dir.file("out3"), {"--config", dir.file("fraction.json")}));
  EXPECT_EQ(fraction.exit_code, 2);
  EXPECT_NE(fraction.err.find("key 'kernel_size': must be a whole number, got 4.7"), std::string::npos) << fraction.err;
  test::write_file(dir.file("whole.json"), R"({"kernel_size": 3.0})");  // a whole number written as a float is fine
  EXPECT_EQ(run_crepe(prune_args(shared_path("models/stories260k"), dir.file("out4"), {"--config", dir.file("whole.json")})).exit_code, 0);

  // A file that says two things, or something only the command line can say, is refused by name.
  const std::pair<const char*, const char*> refused[] = {
      {R"({"sparsity": 0.5, "gamma": 0.1, "sparsity": 0.6})", "key 'sparsity': appears twice"},
      {R"({"kernel_size": 5, "kernel-size": 7})", "key 'kernel_size': sets --kernel-size again (after 'kernel-size')"},
      {R"({"model": "/elsewhere"})", "key 'model': --model belongs on the command line"},
      {R"({"out": "/elsewhere"})", "key 'out': --out belongs on the command line"}};
  for (const auto& [text, phrase] : refused) {
    test::write_file(dir.file("refused.json"), text);
    const auto r = run_crepe(prune_args(shared_path("models/stories260k"), dir.file("out5"), {"--config", dir.file("refused.json")}));
    EXPECT_EQ(r.exit_code, 2) << text << "\n" << r.err;
    EXPECT_NE(r.err.find(dir.file("refused.json") + ": " + phrase), std::string::npos) << text << "\n" << r.err;
    EXPECT_FALSE(fs::exists(dir.file("out5")));
  }
  // Nested records may repeat keys across objects: only the options are checked.
  test::write_file(dir.file("records.json"), R"({"sparsity": 0.5, "_search": {"a": {"k": 1}, "b": {"k": 2}}})");
  EXPECT_EQ(run_crepe(prune_args(shared_path("models/stories260k"), dir.file("out6"), {"--config", dir.file("records.json")})).exit_code, 0);
}

// The target is one setting stated two ways: a command line's --pattern replaces a file's sparsity,
// and its --sparsity a file's pattern, rather than contradicting them.
// Wanda's row group loses floor(0.7 * 64) = 44 of each 64-wide row, 68.75%: the report's per-block
// sparsity says what the masks did, beside the target they were given.
TEST(PruneCli, ReportedBlockSparsityIsMeasured) {
  test::TempDir dir;
  const auto r = run_crepe(prune_args(shared_path("models/stories260k"), dir.file("out"), {"--method", "wanda", "--sparsity", "0.7", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto sparsity = nlohmann::json::parse(r.out).at("sparsity");
  std::map<std::string, std::pair<int64_t, int64_t>> per_block;  // "model.layers.N." -> pruned, numel
  for (const auto& t : sparsity.at("tensors")) {
    const std::string name = t.at("name");
    const std::string block = name.substr(0, name.find('.', std::string("model.layers.").size()) + 1);
    per_block[block].first += t.at("pruned").get<int64_t>();
    per_block[block].second += t.at("numel").get<int64_t>();
  }
  const auto blocks = sparsity.at("blocks");
  ASSERT_EQ(blocks.size(), per_block.size());
  for (size_t b = 0; b < blocks.size(); ++b) {
    const auto& [pruned, numel] = per_block.at("model.layers." + std::to_string(b) + ".");
    EXPECT_DOUBLE_EQ(blocks.at(b).get<double>(), static_cast<double>(pruned) / static_cast<double>(numel)) << b;
    EXPECT_LT(blocks.at(b).get<double>(), 0.7) << b;
    EXPECT_DOUBLE_EQ(sparsity.at("block_targets").at(b).get<double>(), 0.7) << b;
  }
}

// An option the configuration never reads is named in a warning (from the command line or the
// config file alike), and indeed changes nothing.
TEST(PruneCli, OptionsWithoutEffectAreNamed) {
  test::TempDir dir;
  const std::string model = shared_path("models/stories260k");
  test::write_file(dir.file("found.json"), R"({"kernel-size": 5, "gamma": 0.5})");
  const auto plain = run_crepe(prune_args(model, dir.file("plain"), {"--method", "wanda"}));
  const auto extra = run_crepe(prune_args(model, dir.file("extra"), {"--method", "wanda", "--act-power", "0.3", "--dsnot-cycles",
                                                                     "5", "--config", dir.file("found.json")}));
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  ASSERT_EQ(extra.exit_code, 0) << extra.err;
  EXPECT_EQ(plain.err.find("has no effect"), std::string::npos) << plain.err;
  for (const char* line : {"--act-power has no effect with --method wanda", "--dsnot-cycles has no effect without --reprune dsnot",
                           "--kernel-size has no effect with --method wanda", "--gamma has no effect with --method wanda"}) {
    EXPECT_NE(extra.err.find(line), std::string::npos) << line << "\n" << extra.err;
  }
  EXPECT_EQ(read_file(dir.file("plain/model.safetensors")), read_file(dir.file("extra/model.safetensors")));
  // Bad input is still one line: the warnings come after the inputs are checked.
  const auto missing = run_crepe({"prune", "--model", dir.file("nowhere"), "--out", dir.file("x"), "--method", "magnitude",
                                  "--nsamples", "4", "-q"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;
}

TEST(PruneCli, ATargetOnTheCommandLineReplacesTheConfigFilesTarget) {
  test::TempDir dir;
  test::write_file(dir.file("sparse.json"), R"({"method": "ria", "sparsity": 0.6})");
  const auto nm = run_crepe(prune_args(shared_path("models/stories260k"), dir.file("nm"),
                                       {"--config", dir.file("sparse.json"), "--pattern", "2:4", "--json"}));
  ASSERT_EQ(nm.exit_code, 0) << nm.err;
  const auto h = nlohmann::json::parse(nm.out).at("hyperparameters");
  EXPECT_EQ(h.at("pattern"), "2:4");
  EXPECT_EQ(h.at("method"), "ria");
  test::write_file(dir.file("nm.json"), R"({"method": "ria", "pattern": "2:4"})");
  const auto sparse = run_crepe(prune_args(shared_path("models/stories260k"), dir.file("sparse"),
                                           {"--config", dir.file("nm.json"), "--sparsity", "0.6", "--json"}));
  ASSERT_EQ(sparse.exit_code, 0) << sparse.err;
  const auto u = nlohmann::json::parse(sparse.out).at("hyperparameters");
  EXPECT_EQ(u.at("pattern"), "unstructured");
  EXPECT_DOUBLE_EQ(u.at("sparsity").get<double>(), 0.6);
  // --pattern unstructured asks for no particular sparsity: the file's stands.
  const auto unstructured = run_crepe(prune_args(shared_path("models/stories260k"), dir.file("unstructured"),
                                                 {"--config", dir.file("sparse.json"), "--pattern", "unstructured", "--json"}));
  ASSERT_EQ(unstructured.exit_code, 0) << unstructured.err;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(unstructured.out).at("hyperparameters").at("sparsity").get<double>(), 0.6);
  // Within one source the contradiction is still refused.
  test::write_file(dir.file("both.json"), R"({"pattern": "2:4", "sparsity": 0.6})");
  const auto both = run_crepe(prune_args(shared_path("models/stories260k"), dir.file("both"), {"--config", dir.file("both.json")}));
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("contradicts"), std::string::npos) << both.err;
}

TEST(PruneCli, RefusesToOverwriteOrWriteIntoTheInput) {
  test::TempDir dir;
  const std::string model = shared_path("models/stories260k");
  ASSERT_EQ(run_crepe(prune_args(model, dir.file("out"), {})).exit_code, 0);
  test::write_file(dir.file("out/extra.txt"), "added later");
  const auto exists = run_crepe(prune_args(model, dir.file("out"), {}));
  EXPECT_EQ(exists.exit_code, 2);
  EXPECT_NE(exists.err.find("--force"), std::string::npos);
  EXPECT_EQ(read_file(dir.file("out/extra.txt")), "added later");

  const auto forced = run_crepe(prune_args(model, dir.file("out"), {"--force"}));  // an earlier output: replaced
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_FALSE(fs::exists(dir.file("out/extra.txt")));
  EXPECT_TRUE(fs::exists(dir.file("out/model.safetensors")));

  // A folder of the user's own is never deleted, --force or not; nor the current directory.
  fs::create_directory(dir.file("mine"));
  test::write_file(dir.file("mine/keep.txt"), "mine");
  const auto own = run_crepe(prune_args(model, dir.file("mine"), {"--force"}));
  EXPECT_EQ(own.exit_code, 2);
  EXPECT_NE(own.err.find("is not an earlier crepe output"), std::string::npos) << own.err;
  EXPECT_EQ(read_file(dir.file("mine/keep.txt")), "mine");
  const auto here = run_crepe(prune_args(model, ".", {"--force"}));
  EXPECT_EQ(here.exit_code, 2);
  EXPECT_NE(here.err.find("current directory"), std::string::npos) << here.err;

  const auto inside = run_crepe(prune_args(model, model + "/pruned", {}));
  EXPECT_EQ(inside.exit_code, 2);
  EXPECT_NE(inside.err.find("lies inside, the input"), std::string::npos) << inside.err;

  // --force never deletes an input: not a model inside the output, not a data file inside it.
  stories_copy(dir, "parent/model");
  const auto above = run_crepe(prune_args(dir.file("parent/model"), dir.file("parent"), {"--force"}));
  EXPECT_EQ(above.exit_code, 2);
  EXPECT_NE(above.err.find("contains the input"), std::string::npos) << above.err;
  EXPECT_TRUE(fs::exists(dir.file("parent/model/model.safetensors")));
  fs::create_directory(dir.file("data"));
  test::write_file(dir.file("data/calib.txt"), test::read_file(shared_path("data/tinystories-val.txt")).substr(0, 20000));
  auto with_calib = prune_args(model, dir.file("data"), {"--force"});
  with_calib[std::find(with_calib.begin(), with_calib.end(), "--calib-data") - with_calib.begin() + 1] = dir.file("data/calib.txt");
  const auto data_inside = run_crepe(with_calib);
  EXPECT_EQ(data_inside.exit_code, 2);
  EXPECT_NE(data_inside.err.find("calib.txt"), std::string::npos) << data_inside.err;
  EXPECT_TRUE(fs::exists(dir.file("data/calib.txt")));
  // A file where a folder of the output should be: one line, exit 2, nothing touched.
  test::write_file(dir.file("precious.json"), "{}");
  const auto file_parent = run_crepe(prune_args(model, dir.file("precious.json/sub"), {"--force"}));
  EXPECT_EQ(file_parent.exit_code, 2);
  EXPECT_NE(file_parent.err.find("is not a directory"), std::string::npos) << file_parent.err;
  EXPECT_EQ(read_file(dir.file("precious.json")), "{}");
  // OUT.partial follows the same rules: a model that happens to be named so is neither resumed
  // nor deleted.
  stories_copy(dir, "m.partial");
  const auto partial_input = run_crepe(prune_args(dir.file("m.partial"), dir.file("m"), {"--force"}));
  EXPECT_EQ(partial_input.exit_code, 2);
  EXPECT_NE(partial_input.err.find("m.partial: is, or lies inside, the input"), std::string::npos) << partial_input.err;
  EXPECT_TRUE(fs::exists(dir.file("m.partial/model.safetensors")));
  fs::create_directories(dir.file("notes.partial"));
  test::write_file(dir.file("notes.partial/notes.txt"), "mine");
  const auto foreign_partial = run_crepe(prune_args(model, dir.file("notes"), {"--force"}));
  EXPECT_EQ(foreign_partial.exit_code, 2);
  EXPECT_NE(foreign_partial.err.find("is not an interrupted crepe run"), std::string::npos) << foreign_partial.err;
  EXPECT_EQ(read_file(dir.file("notes.partial/notes.txt")), "mine");
  // A trailing slash names the same directory.
  const auto slash = run_crepe(prune_args(model, dir.file("slashed") + "/", {}));
  ASSERT_EQ(slash.exit_code, 0) << slash.err;
  EXPECT_TRUE(fs::exists(dir.file("slashed/model.safetensors")));
  // No temporary directories are left next to the output.
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".crepe-tmp"), std::string::npos) << entry.path();
  }
  // What a killed run left (a temporary no live process holds) goes with the next run to that output.
  fs::create_directories(dir.file(".slashed.crepe-tmp-KILLED"));
  test::write_file(dir.file(".slashed.crepe-tmp-KILLED/model.safetensors"), "half a shard");
  const auto after_kill = run_crepe(prune_args(model, dir.file("slashed"), {"--force"}));
  ASSERT_EQ(after_kill.exit_code, 0) << after_kill.err;
  EXPECT_FALSE(fs::exists(dir.file(".slashed.crepe-tmp-KILLED")));
  EXPECT_NE(after_kill.err.find("removed " + dir.file(".slashed.crepe-tmp-KILLED") + ", left behind by a crepe run that was killed"),
            std::string::npos) << after_kill.err;
}

TEST(PruneCli, BadOptionsExitWithCode2BeforeAnyWork) {
  test::TempDir dir;
  const std::string model = shared_path("models/stories260k");
  struct Case {
    std::vector<std::string> args;
    std::string mentions;
  };
  for (const Case& c : std::vector<Case>{{{"--sparsity", "1.0"}, "--sparsity"},
                                         {{"--sparsity", "-0.1"}, "--sparsity"},
                                         {{"--pattern", "4:4"}, "--pattern"},
                                         {{"--kernel-size", "4"}, "--kernel-size"},
                                         {{"--method", "obs"}, "--method"},
                                         {{"--group", "column"}, "--group"},
                                         {{"--act-power", "2"}, "--act-power"},
                                         {{"--seqlen", "32"}, "--seqlen: given more than once"},
                                         {{"--dsnot-skip", "self_attn", "--reprune", "dsnot"}, "--dsnot-skip"}}) {
    const auto r = run_crepe(prune_args(model, dir.file("out"), c.args));
    EXPECT_EQ(r.exit_code, 2) << c.mentions;
    EXPECT_NE(r.err.find(c.mentions), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir.file("out")));
  }
}

// Linear biases (Qwen's q/k/v, attention_bias, mlp_bias) are computed with and written untouched.
TEST(PruneCli, BiasesAreUsedAndWrittenUnchanged) {
  test::TempDir dir;
  const std::string plain = shared_path("models/stories260k");
  const std::string biased = test::make_biased_copy(dir, plain);
  const std::vector<std::string> eval = {"--eval", shared_path("data/tinystories-val.txt"), "--eval-seqlen", "128",
                                         "--eval-max-windows", "4", "--json"};
  auto prune = [&](const std::string& model, const std::string& out) {
    std::vector<std::string> extra = eval;
    extra.insert(extra.end(), {"--method", "wanda"});
    const auto r = run_crepe(prune_args(model, dir.file(out), extra));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  };
  const auto with_biases = prune(biased, "out-biased"), without = prune(plain, "out-plain");
  const double dense_biased = with_biases.at("eval").at("dense").at("perplexity");
  EXPECT_NE(dense_biased, without.at("eval").at("dense").at("perplexity").get<double>()) << "the biases were not used";
  EXPECT_NEAR(with_biases.at("sparsity").at("overall").get<double>(), 0.5, 1e-3);
  const auto source = io::Checkpoint::open(biased), written = io::Checkpoint::open(dir.file("out-biased"));
  int64_t biases = 0;
  for (int64_t b = 0; b < source.num_layers(); ++b) {
    for (model::Linear l : model::kLinears) {
      const std::string name = io::Checkpoint::linear_bias_name(b, l);
      EXPECT_TRUE(at::equal(written.tensors().load(name), source.tensors().load(name))) << name;
      ++biases;
    }
  }
  EXPECT_EQ(biases, source.num_layers() * model::kLinearCount);
}

TEST(PruneCli, EvalPrintsDenseAndPrunedPerplexity) {
  test::TempDir dir;
  const auto r = run_crepe(prune_args(shared_path("models/stories260k"), dir.file("out"),
                                      {"--eval", shared_path("data/tinystories-val.txt"), "--eval-seqlen", "128",
                                       "--eval-max-windows", "4"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("dense "), std::string::npos);
  const auto report = nlohmann::json::parse(read_file(dir.file("out/crepe_report.json")));
  const double dense = report.at("eval").at("dense").at("perplexity");
  const double pruned = report.at("eval").at("pruned").at("perplexity");
  EXPECT_GT(dense, 1.0);
  EXPECT_GT(pruned, dense);  // half the weights gone costs something on this tiny model
}

}  // namespace
}  // namespace crepe

namespace crepe {
namespace {

TEST(PruneCli, BuiltInDefaultsEqualConfigsCrepeDefaultJson) {
  test::TempDir dir;
  const std::string model = test::shared_path("models/stories260k");
  const auto plain = test::run_crepe(prune_args(model, dir.file("a"), {"--json"}));
  const auto from_file = test::run_crepe(
      prune_args(model, dir.file("b"), {"--json", "--config", test::source_dir() + "/configs/crepe-default.json"}));
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  const auto a = nlohmann::json::parse(plain.out).at("hyperparameters");
  const auto b = nlohmann::json::parse(from_file.out).at("hyperparameters");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.at("method"), "crepe");
  EXPECT_EQ(test::read_file(dir.file("a/model.safetensors")), test::read_file(dir.file("b/model.safetensors")));
}

// --objective ppl climbs on the pruned model's perplexity itself: the value it reports for what it
// found is the perplexity crepe prune gets from the found file, on the same held-out windows.
TEST(SearchCli, PerplexityObjectiveReportsWhatPruneThenMeasures) {
  test::TempDir dir;
  const std::string model = test::shared_path("models/stories260k");
  const std::string text = test::shared_path("data/tinystories-val.txt");
  test::write_file(dir.file("found.json.crepe-tmp-Kill01"), "{\"method\": \"cr");  // a killed search's half-written result
  const auto search = test::run_crepe({"search", "--model", model, "--out", dir.file("found.json"), "--calib-data", text,
                                       "--nsamples", "8", "--seqlen", "64", "--objective", "ppl", "--budget", "4",
                                       "--kernels", "1,3", "--groups", "layer", "--eval-data", text, "--eval-windows", "4", "-q"});
  ASSERT_EQ(search.exit_code, 0) << search.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("found.json.crepe-tmp-Kill01")));
  EXPECT_NE(search.err.find("removed " + dir.file("found.json.crepe-tmp-Kill01")), std::string::npos) << search.err;
  const auto found = nlohmann::json::parse(test::read_file(dir.file("found.json")));
  const auto record = found.at("_search");
  EXPECT_EQ(record.at("objective"), "ppl");
  EXPECT_EQ(record.at("evaluations"), 4);
  EXPECT_EQ(record.at("eval_windows"), 4);
  EXPECT_LE(record.at("evaluations_to_best").get<int64_t>(), 4);
  const double searched = record.at("perplexity").get<double>();
  const auto prune = test::run_crepe({"prune", "--model", model, "--out", dir.file("out"), "--config", dir.file("found.json"),
                                      "--eval", text, "--eval-seqlen", "64", "--eval-max-windows", "4", "--json", "-q"});
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  const auto eval = nlohmann::json::parse(prune.out).at("eval");
  EXPECT_NEAR(eval.at("pruned").at("perplexity").get<double>(), searched, 1e-5 * searched);
  EXPECT_GT(searched, eval.at("dense").at("perplexity").get<double>());  // half the weights are gone
}

TEST(SearchCli, FoundConfigurationIsAPruneConfig) {
  test::TempDir dir;
  const std::string model = test::shared_path("models/stories260k");
  const auto search = test::run_crepe({"search", "--model", model, "--out", dir.file("found.json"), "--calib-data",
                                       test::shared_path("data/tinystories-val.txt"), "--nsamples", "8", "--seqlen", "64",
                                       "--budget", "16", "--kernels", "1,3", "--groups", "layer", "--stats",
                                       dir.file("stats.safetensors"), "-q"});
  ASSERT_EQ(search.exit_code, 0) << search.err;
  const auto found = nlohmann::json::parse(test::read_file(dir.file("found.json")));
  EXPECT_EQ(found.at("method"), "crepe");
  EXPECT_TRUE(found.at("kernel-size") == 1 || found.at("kernel-size") == 3);
  // The anchors (RIA and crepe's defaults, k = 3 being searched), then --budget 16 over 2 pairs:
  // one generation each.
  EXPECT_EQ(found.at("_search").at("evaluations").get<int64_t>(), 2 + 14);
  EXPECT_TRUE(found.at("_search").at("anchors").at("ria layer").is_number());
  EXPECT_TRUE(found.at("_search").at("anchors").at("defaults layer").is_number());
  EXPECT_EQ(found.at("_search").at("proxy"), "kl");  // auto, with every block in use
  EXPECT_EQ(found.at("_search").at("weights"), "resident");  // auto: a tiny model fits
  EXPECT_TRUE(std::filesystem::exists(dir.file("stats.safetensors")));
  // Weights read from the checkpoint at every evaluation find the same configuration.
  const auto streamed = test::run_crepe({"search", "--model", model, "--out", dir.file("streamed.json"), "--calib-data",
                                         test::shared_path("data/tinystories-val.txt"), "--nsamples", "8", "--seqlen", "64",
                                         "--budget", "16", "--kernels", "1,3", "--groups", "layer", "--stats",
                                         dir.file("stats.safetensors"), "--weights", "stream", "-q"});
  ASSERT_EQ(streamed.exit_code, 0) << streamed.err;
  const auto same = nlohmann::json::parse(test::read_file(dir.file("streamed.json")));
  EXPECT_EQ(same.at("_search").at("weights"), "stream");
  for (const char* key : {"kernel-size", "alpha", "beta", "gamma", "act-power", "group"}) EXPECT_EQ(same.at(key), found.at(key)) << key;
  // The calibration it was found with travels in the file as prune options (the path made absolute).
  EXPECT_EQ(found.at("calib-data"), std::filesystem::absolute(test::shared_path("data/tinystories-val.txt")).lexically_normal().string());
  EXPECT_EQ(found.at("nsamples"), 8);
  EXPECT_EQ(found.at("seqlen"), 64);
  EXPECT_EQ(found.at("seed"), 0);
  // Pruned with nothing but the file: the same configuration and the same calibration.
  const auto prune = test::run_crepe({"prune", "--model", model, "--out", dir.file("out"), "--config", dir.file("found.json"), "--json", "-q"});
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  const auto report = nlohmann::json::parse(prune.out);
  const auto h = report.at("hyperparameters");
  EXPECT_DOUBLE_EQ(h.at("gamma").get<double>(), found.at("gamma").get<double>());
  EXPECT_EQ(h.at("kernel_size"), found.at("kernel-size"));
  EXPECT_EQ(report.at("calibration").at("source"), "file");
  EXPECT_EQ(report.at("calibration").at("data"), found.at("calib-data"));
  EXPECT_EQ(report.at("calibration").at("nsamples"), 8);
  EXPECT_EQ(report.at("calibration").at("seqlen"), 64);
}

// gini correlates negatively with perplexity, so PHO maximizes it unless told otherwise.
TEST(SearchCli, EachProxyIsSearchedInItsMeasuredDirection) {
  test::TempDir dir;
  auto search = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"search", "--model", test::shared_path("models/stories260k"), "--out", dir.file(out),
                                     "--calib-data", test::shared_path("data/tinystories-val.txt"), "--nsamples", "4",
                                     "--seqlen", "32", "--budget", "7", "--kernels", "3", "--groups", "layer", "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_crepe(args);
  };
  auto direction = [&](const std::string& out) {
    return nlohmann::json::parse(test::read_file(dir.file(out))).at("_search").at("direction").get<std::string>();
  };
  ASSERT_EQ(search("gini.json", {"--proxy", "gini"}).exit_code, 0);
  EXPECT_EQ(direction("gini.json"), "maximize");
  ASSERT_EQ(search("gini-min.json", {"--proxy", "gini", "--direction", "minimize"}).exit_code, 0);
  EXPECT_EQ(direction("gini-min.json"), "minimize");
  ASSERT_EQ(search("diag.json", {"--proxy", "recon_diag"}).exit_code, 0);
  EXPECT_EQ(direction("diag.json"), "minimize");
  ASSERT_EQ(search("diag-max.json", {"--proxy", "recon_diag", "--maximize"}).exit_code, 0);
  EXPECT_EQ(direction("diag-max.json"), "maximize");
  const auto both = search("both.json", {"--proxy", "gini", "--maximize", "--direction", "minimize"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("--maximize"), std::string::npos) << both.err;
  // An N:M configuration names no comparison group (it has none), so prune takes it without a warning.
  ASSERT_EQ(search("nm.json", {"--proxy", "gini", "--pattern", "2:4"}).exit_code, 0);
  const auto nm = nlohmann::json::parse(test::read_file(dir.file("nm.json")));
  EXPECT_FALSE(nm.contains("group")) << nm.dump();
  EXPECT_EQ(nm.at("pattern"), "2:4");
  const auto pruned = test::run_crepe({"prune", "--model", test::shared_path("models/stories260k"), "--out", dir.file("nm-out"),
                                       "--config", dir.file("nm.json"), "-q"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_EQ(pruned.err.find("has no effect"), std::string::npos) << pruned.err;
}

TEST(SearchCli, OutputIsCheckedFirstAndResumeContinuesOnlyTheSameSearch) {
  test::TempDir dir;
  stories_copy(dir, "model");
  const std::string config = test::read_file(dir.file("model/config.json"));
  const std::vector<std::string> common = {"search", "--model", dir.file("model"), "--calib-data",
                                           test::shared_path("data/tinystories-val.txt"), "--nsamples", "4", "--seqlen",
                                           "32", "--budget", "14", "--kernels", "3", "--groups", "layer", "-q"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = common;
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_crepe(args);
  };
  const auto into_model = with({"--out", dir.file("model/config.json")});
  EXPECT_EQ(into_model.exit_code, 2);
  EXPECT_NE(into_model.err.find("inputs are never written"), std::string::npos) << into_model.err;
  EXPECT_EQ(test::read_file(dir.file("model/config.json")), config);
  EXPECT_FALSE(fs::exists(dir.file("model/config.json.trace.json")));
  fs::create_directory(dir.file("folder"));
  const auto folder = with({"--out", dir.file("folder")});
  EXPECT_EQ(folder.exit_code, 2);
  EXPECT_NE(folder.err.find("is a directory"), std::string::npos) << folder.err;
  test::write_file(dir.file("notes.txt"), "mine");
  const auto own_file = with({"--out", dir.file("notes.txt")});
  EXPECT_EQ(own_file.exit_code, 2);
  EXPECT_NE(own_file.err.find("is not an earlier crepe search result"), std::string::npos) << own_file.err;
  EXPECT_EQ(test::read_file(dir.file("notes.txt")), "mine");
  const auto nowhere = with({"--out", dir.file("missing/found.json")});
  EXPECT_EQ(nowhere.exit_code, 2);
  EXPECT_NE(nowhere.err.find("does not exist"), std::string::npos) << nowhere.err;

  const auto early = with({"--out", dir.file("found.json"), "--resume"});  // no search ran yet
  EXPECT_EQ(early.exit_code, 2);
  EXPECT_NE(early.err.find("nothing to resume"), std::string::npos) << early.err;
  const auto first = with({"--out", dir.file("found.json")});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto found = nlohmann::json::parse(test::read_file(dir.file("found.json")));
  const auto again = with({"--out", dir.file("found.json"), "--resume"});  // the finished search, continued
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const auto resumed = nlohmann::json::parse(test::read_file(dir.file("found.json")));
  for (const char* key : {"kernel-size", "beta", "gamma", "act-power"}) EXPECT_EQ(resumed.at(key), found.at(key)) << key;
  EXPECT_EQ(resumed.at("_search").at("evaluations"), found.at("_search").at("evaluations"));  // none added
  // Times count every session: the whole run's as much as the search's.
  EXPECT_GT(resumed.at("_search").at("seconds_earlier").get<double>(), 0.0);
  EXPECT_GE(resumed.at("_seconds").get<double>(), resumed.at("_search").at("seconds").get<double>());
  for (const std::vector<std::string>& change : {std::vector<std::string>{"--sparsity", "0.6"},
                                                 std::vector<std::string>{"--pattern", "2:4"},
                                                 std::vector<std::string>{"--proxy", "recon_diag"},
                                                 std::vector<std::string>{"--seed", "1"}}) {
    std::vector<std::string> extra = {"--out", dir.file("found.json"), "--resume"};
    extra.insert(extra.end(), change.begin(), change.end());
    const auto other = with(extra);
    EXPECT_EQ(other.exit_code, 2) << change[0];
    EXPECT_NE(other.err.find("cannot resume"), std::string::npos) << other.err;
  }
  // The refusal names the very setting that changed, inside the recorded calibration.
  std::vector<std::string> shorter = common;
  shorter[std::find(shorter.begin(), shorter.end(), "--seqlen") - shorter.begin() + 1] = "24";
  shorter.insert(shorter.end(), {"--out", dir.file("found.json"), "--resume"});
  const auto fewer = test::run_crepe(shorter);
  EXPECT_EQ(fewer.exit_code, 2);
  EXPECT_NE(fewer.err.find("'calibration.seqlen' differs from the interrupted run (it had 32, now 24)"), std::string::npos)
      << fewer.err;
}

TEST(SearchCli, AutoProxyFollowsTheLayersInUseAndKlNeedsThemAll) {
  test::TempDir dir;
  const std::vector<std::string> common = {"search", "--model", test::shared_path("models/stories260k"), "--calib-data",
                                           test::shared_path("data/tinystories-val.txt"), "--nsamples", "4", "--seqlen",
                                           "32", "--budget", "8", "--kernels", "3", "--groups", "layer", "--layers", "2",
                                           "-q", "--out", dir.file("found.json")};
  const auto sampled = test::run_crepe(common);
  ASSERT_EQ(sampled.exit_code, 0) << sampled.err;
  EXPECT_EQ(nlohmann::json::parse(test::read_file(dir.file("found.json"))).at("_search").at("proxy"), "block_out");
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = common;
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_crepe(args);
  };
  const auto kl = with({"--proxy", "kl"});
  EXPECT_EQ(kl.exit_code, 2);
  EXPECT_NE(kl.err.find("--layers all"), std::string::npos) << kl.err;
  const auto no_samples = with({"--proxy", "block_out", "--proxy-samples", "0"});
  EXPECT_EQ(no_samples.exit_code, 2);
  EXPECT_NE(no_samples.err.find("--proxy-samples"), std::string::npos) << no_samples.err;
  const auto bad_weights = with({"--weights", "gpu"});
  EXPECT_EQ(bad_weights.exit_code, 2);
  EXPECT_NE(bad_weights.err.find("--weights"), std::string::npos) << bad_weights.err;
}

TEST(SearchCli, GramMatricesAreCollectedOnlyForTheReconProxy) {
  test::TempDir dir;
  const std::vector<std::string> common = {"search", "--model", test::shared_path("models/stories260k"), "--calib-data",
                                           test::shared_path("data/tinystories-val.txt"), "--nsamples", "4", "--seqlen",
                                           "32", "--budget", "8", "--kernels", "3", "--groups", "layer", "--stats",
                                           dir.file("stats.safetensors"), "--out", dir.file("found.json")};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = common;
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_crepe(args);
  };
  const auto kl = with({});
  ASSERT_EQ(kl.exit_code, 0) << kl.err;
  EXPECT_FALSE(io::SafetensorsFile::open(dir.file("stats.safetensors"))->contains("block.0.input.0.gram"));
  const auto recon = with({"--proxy", "recon"});
  ASSERT_EQ(recon.exit_code, 0) << recon.err;
  EXPECT_NE(recon.err.find("not reusing"), std::string::npos) << recon.err;  // the cache has no Gram matrices
  EXPECT_TRUE(io::SafetensorsFile::open(dir.file("stats.safetensors"))->contains("block.0.input.0.gram"));
  const auto again = with({});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("reusing"), std::string::npos) << again.err;  // one with them serves kl too
  EXPECT_EQ(again.err.find("not reusing"), std::string::npos) << again.err;
}

// The statistics cache is keyed on what its inputs hold, not on how they are named: another
// spelling of the same file reuses it, an edited file under the same name does not.
TEST(SearchCli, StatisticsCacheFollowsTheCalibrationFilesContent) {
  test::TempDir dir;
  test::write_file(dir.file("calib.txt"), test::read_file(test::shared_path("data/tinystories-val.txt")).substr(0, 40000));
  auto search = [&](const std::string& calib) {
    return test::run_crepe({"search", "--model", test::shared_path("models/stories260k"), "--calib-data", calib,
                            "--nsamples", "4", "--seqlen", "32", "--budget", "8", "--kernels", "3", "--groups", "layer",
                            "--stats", dir.file("stats.safetensors"), "--out", dir.file("found.json")});
  };
  ASSERT_EQ(search(dir.file("calib.txt")).exit_code, 0);
  const auto respelled = search(dir.path() + "/./calib.txt");
  ASSERT_EQ(respelled.exit_code, 0) << respelled.err;
  EXPECT_NE(respelled.err.find("statistics: reusing"), std::string::npos) << respelled.err;
  test::write_file(dir.file("calib.txt"), test::read_file(dir.file("calib.txt")) + "\nOne more story.\n");
  const auto edited = search(dir.file("calib.txt"));
  ASSERT_EQ(edited.exit_code, 0) << edited.err;
  EXPECT_NE(edited.err.find("statistics: not reusing"), std::string::npos) << edited.err;
}

TEST(SearchCli, CorrelationCanBeRemeasuredOnAnotherSubsampleWithoutPruningAgain) {
  test::TempDir dir;
  const std::vector<std::string> common = {"search", "--model", test::shared_path("models/stories260k"), "--calib-data",
                                           test::shared_path("data/tinystories-val.txt"), "--nsamples", "4", "--seqlen",
                                           "32", "--kernels", "3,5", "-q"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = common;
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_crepe(args);
  };
  const auto first = with({"--correlate", "4", "--eval-data", test::shared_path("data/wikitext2-test.txt"),
                           "--eval-windows", "2", "--out", dir.file("first.json")});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto again = with({"--correlate-from", dir.file("first.json"), "--proxy-data",
                           test::shared_path("data/wikitext2-test.txt"), "--out", dir.file("again.json"), "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const auto a = nlohmann::json::parse(test::read_file(dir.file("first.json")));
  const auto b = nlohmann::json::parse(test::read_file(dir.file("again.json")));
  EXPECT_EQ(nlohmann::json::parse(again.out), b);  // --json: stdout is the one document, nothing after it
  // The model is compared by where it is, not how its path is spelled.
  std::vector<std::string> respelled = common;
  respelled[2] += "/./";
  respelled.insert(respelled.end(), {"--correlate-from", dir.file("first.json"), "--out", dir.file("respelled.json")});
  const auto same_model = test::run_crepe(respelled);
  EXPECT_EQ(same_model.exit_code, 0) << same_model.err;
  ASSERT_EQ(a.at("samples").size(), 4u);
  ASSERT_EQ(b.at("samples").size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(a["samples"][i]["perplexity"], b["samples"][i]["perplexity"]);  // looked up, not re-measured
    EXPECT_EQ(a["samples"][i]["gamma"], b["samples"][i]["gamma"]);
    EXPECT_EQ(a["samples"][i]["recon"], b["samples"][i]["recon"]);            // same calibration statistics
    EXPECT_NE(a["samples"][i]["kl"], b["samples"][i]["kl"]);                  // another subsample
  }
  EXPECT_TRUE(b.at("spearman").contains("kl"));
  const auto other_target = with({"--correlate-from", dir.file("first.json"), "--sparsity", "0.7", "--out", dir.file("x.json")});
  EXPECT_EQ(other_target.exit_code, 2);
  EXPECT_NE(other_target.err.find("measured for"), std::string::npos) << other_target.err;
  const auto both = with({"--correlate-from", dir.file("first.json"), "--correlate", "3", "--out", dir.file("x.json")});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("--correlate-from"), std::string::npos) << both.err;
  const auto no_samples = with({"--proxy-data", test::shared_path("data/wikitext2-test.txt"), "--proxy-samples", "0",
                                "--out", dir.file("x.json")});
  EXPECT_EQ(no_samples.exit_code, 2);
  EXPECT_NE(no_samples.err.find("--proxy-data"), std::string::npos) << no_samples.err;
  const auto hill_with_proxy = with({"--objective", "ppl", "--proxy", "kl", "--out", dir.file("x.json")});
  EXPECT_EQ(hill_with_proxy.exit_code, 2);
  EXPECT_NE(hill_with_proxy.err.find("--proxy"), std::string::npos) << hill_with_proxy.err;
  const auto hill_with_weights = with({"--objective", "ppl", "--weights", "stream", "--out", dir.file("x.json")});
  EXPECT_EQ(hill_with_weights.exit_code, 2);
  EXPECT_NE(hill_with_weights.err.find("--weights"), std::string::npos) << hill_with_weights.err;
  test::write_file(dir.file("bad.json"), R"({"samples": [{"kernel-size": 3}]})");
  const auto bad = with({"--correlate-from", dir.file("bad.json"), "--out", dir.file("x.json")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bad.json"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace crepe

namespace crepe {
namespace {

// Interrupt a run after block N (by SIGINT or SIGKILL), resume it, and compare with a run that was
// never interrupted: the weights must be byte-identical.
class ResumeAfterInterruption : public ::testing::TestWithParam<std::string> {};

TEST_P(ResumeAfterInterruption, ResumedOutputEqualsAnUninterruptedRun) {
  test::TempDir dir;
  const std::string model = test::shared_path("models/mini-llama-6m");
  const auto args = [&](const std::string& out, std::vector<std::string> extra) {
    return prune_args(model, dir.file(out), std::move(extra));
  };
  ASSERT_EQ(test::run_crepe(args("straight", {})).exit_code, 0);
  const std::string stop = GetParam();
  const auto stopped = run_stopped(stop, args("resumed", {}));
  const bool killed = stop.find("kill") != std::string::npos;
  const bool terminated = stop.find("term") != std::string::npos;
  EXPECT_EQ(stopped.exit_code, killed ? 128 + 9 : terminated ? 128 + 15 : 130) << stopped.err;
  if (!killed) EXPECT_NE(stopped.err.find("--resume"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("resumed")));  // nothing that looks complete
  EXPECT_TRUE(std::filesystem::exists(dir.file("resumed.partial/manifest.json")));

  // A different request is refused and leaves the saved blocks alone.
  const auto other = test::run_crepe(args("resumed", {"--resume", "--sparsity", "0.7"}));
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("differs"), std::string::npos);

  const auto resumed = test::run_crepe(args("resumed", {"--resume"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(test::read_file(dir.file("resumed/model.safetensors")), test::read_file(dir.file("straight/model.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("resumed.partial")));
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename().string().find("crepe-tmp"), std::string::npos) << entry.path();
  }
}

INSTANTIATE_TEST_SUITE_P(StopPoints, ResumeAfterInterruption,
                         ::testing::Values("0:int", "3:int", "2:term", "4:kill", "1:kill"),
                         [](const auto& info) {
                           std::string name = info.param;
                           name[1] = '_';
                           return "after_block_" + name;
                         });

// With --permute, the channel order each weight is N:M in is saved beside the checkpoint, and a
// resumed run saves the same one.
TEST(PruneCli, PermutedNmHoldsInTheSavedChannelOrderAndSurvivesResume) {
  test::TempDir dir;
  const std::string model = test::shared_path("models/stories260k");
  const std::vector<std::string> options = {"--pattern", "4:8", "--permute"};  // down_proj: 172 = 21 groups + 4
  ASSERT_EQ(test::run_crepe(prune_args(model, dir.file("straight"), options)).exit_code, 0);
  const auto file = nlohmann::json::parse(test::read_file(dir.file("straight/crepe_permutation.json")));
  EXPECT_EQ(file.at("pattern"), "4:8");
  const auto report = nlohmann::json::parse(test::read_file(dir.file("straight/crepe_report.json")));
  EXPECT_EQ(report.at("permutation").at("file"), "crepe_permutation.json");
  const auto pruned = io::Checkpoint::open(dir.file("straight"));
  EXPECT_EQ(file.at("layers").size(), static_cast<size_t>(pruned.num_layers() * model::kLinearCount));
  int64_t reordered = 0;
  for (int64_t b = 0; b < pruned.num_layers(); ++b) {
    for (model::Linear l : model::kLinears) {
      const std::string name = io::Checkpoint::linear_weight_name(b, l);
      const auto order = file.at("layers").at(name).get<std::vector<int64_t>>();
      const at::Tensor W = pruned.tensors().load(name);
      ASSERT_EQ(static_cast<int64_t>(order.size()), W.size(1)) << name;
      const at::Tensor perm = at::tensor(c10::ArrayRef<int64_t>(order), at::kLong);
      EXPECT_TRUE(at::equal(std::get<0>(perm.sort()), at::arange(W.size(1), at::kLong))) << name << ": not a permutation";
      reordered += !at::equal(perm, at::arange(W.size(1), at::kLong));
      EXPECT_TRUE(prune::is_n_of_m_sparse(W.index_select(1, perm), 4, 8)) << name;
    }
  }
  EXPECT_GT(reordered, 0) << "no layer was permuted";
  // inspect --sparsity finds 4:8 in the saved orders, and not in the stored one.
  auto inspect = [&](const std::string& out) {
    const auto r = test::run_crepe({"inspect", "--model", dir.file(out), "--sparsity", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out).at("sparsity");
  };
  const auto sparsity = inspect("straight");
  EXPECT_EQ(sparsity.at("n_m"), nlohmann::json::array({"4:8"}));
  EXPECT_EQ(sparsity.at("channel_orders"), "crepe_permutation.json");
  EXPECT_EQ(sparsity.at("zeros"), report.at("sparsity").at("pruned"));
  fs::copy(dir.file("straight"), dir.file("without-orders"), fs::copy_options::recursive);
  fs::remove(dir.file("without-orders/crepe_permutation.json"));
  EXPECT_EQ(inspect("without-orders").at("n_m"), nlohmann::json::array());
  // A permutation file that is not one, or does not fit this checkpoint: one line naming it, exit 2.
  const std::string down = "model.layers.0.mlp.down_proj.weight";
  const std::vector<std::pair<std::string, std::function<void(nlohmann::json&)>>> damages = {
      {"is not a crepe permutation file", [](nlohmann::json& j) { j["format"] = "something else"; }},
      {"has no channel order for", [&](nlohmann::json& j) { j["layers"].erase(down); }},
      {"has 171 entries", [&](nlohmann::json& j) { j["layers"][down].erase(j["layers"][down].size() - 1); }},
      {"is not a permutation", [&](nlohmann::json& j) { j["layers"][down][0] = j["layers"][down][1]; }},
      {"is not a list of column indices", [&](nlohmann::json& j) { j["layers"][down][0] = 0.5; }},
      {"does not have", [&](nlohmann::json& j) { j["layers"]["model.layers.9.mlp.down_proj.weight"] = j["layers"][down]; }},
  };
  for (const auto& [expected, damage] : damages) {
    nlohmann::json damaged = file;
    damage(damaged);
    test::write_file(dir.file("without-orders/crepe_permutation.json"), damaged.dump());
    const auto bad = test::run_crepe({"inspect", "--model", dir.file("without-orders"), "--sparsity"});
    EXPECT_EQ(bad.exit_code, 2) << expected;
    EXPECT_NE(bad.err.find("crepe_permutation.json"), std::string::npos) << bad.err;
    EXPECT_NE(bad.err.find(expected), std::string::npos) << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  }
  // Pruning a permuted output again leaves its orders behind: they describe the old masks.
  ASSERT_EQ(test::run_crepe(prune_args(dir.file("straight"), dir.file("again"), {"--pattern", "2:4"})).exit_code, 0);
  EXPECT_FALSE(fs::exists(dir.file("again/crepe_permutation.json")));
  EXPECT_EQ(inspect("again").at("n_m"), nlohmann::json::array({"2:4", "4:8"}));

  const auto stopped = run_stopped("2:int", prune_args(model, dir.file("resumed"), options));
  ASSERT_EQ(stopped.exit_code, 130) << stopped.err;
  std::vector<std::string> resume = options;
  resume.push_back("--resume");
  // A manifest whose orders are missing (an earlier crepe) or not permutations is refused, untouched.
  const std::string manifest_path = dir.file("resumed.partial/manifest.json");
  const std::string manifest = test::read_file(manifest_path);
  auto refused_with = [&](const std::function<void(nlohmann::json&)>& damage, const std::string& expected) {
    auto damaged = nlohmann::json::parse(manifest);
    damage(damaged.at("blocks").at("1").at("layers").at(2));
    test::write_file(manifest_path, damaged.dump());
    const auto r = test::run_crepe(prune_args(model, dir.file("resumed"), resume));
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("resumed.partial"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::exists(dir.file("resumed.partial/block-00001.safetensors")));
  };
  refused_with([](nlohmann::json& layer) { layer.erase("input_permutation"); }, "holds no channel permutation");
  refused_with([](nlohmann::json& layer) { layer["input_permutation"][0] = layer["input_permutation"][1]; }, "not a permutation");
  test::write_file(manifest_path, manifest);
  ASSERT_EQ(test::run_crepe(prune_args(model, dir.file("resumed"), resume)).exit_code, 0);
  const auto resumed_report = nlohmann::json::parse(test::read_file(dir.file("resumed/crepe_report.json")));
  for (const char* key : {"kept_score_before", "kept_score_after"}) {  // restored blocks counted too
    EXPECT_DOUBLE_EQ(resumed_report.at("permutation").at(key).get<double>(), report.at("permutation").at(key).get<double>()) << key;
  }
  EXPECT_EQ(test::read_file(dir.file("resumed/crepe_permutation.json")), test::read_file(dir.file("straight/crepe_permutation.json")));
  EXPECT_EQ(test::read_file(dir.file("resumed/model.safetensors")), test::read_file(dir.file("straight/model.safetensors")));
}

TEST(PruneCli, LeftoverPartialRunIsNeverSilentlyDiscarded) {
  test::TempDir dir;
  const std::string model = test::shared_path("models/stories260k");
  ASSERT_EQ(run_stopped("1:int", prune_args(model, dir.file("out"), {})).exit_code, 130);
  const auto again = test::run_crepe(prune_args(model, dir.file("out"), {}));
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("--resume"), std::string::npos);
  const auto forced = test::run_crepe(prune_args(model, dir.file("out"), {"--force"}));
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  const auto nothing = test::run_crepe(prune_args(model, dir.file("fresh"), {"--resume"}));
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_NE(nothing.err.find("nothing to resume"), std::string::npos);
}

TEST(PruneCli, RepruningAPrunedModelReportsTheZerosItHolds) {
  test::TempDir dir;
  const std::string model = test::shared_path("models/stories260k");
  const auto first = run_crepe(prune_args(model, dir.file("half"), {"--method", "magnitude", "--json"}));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto once = nlohmann::json::parse(first.out).at("sparsity");
  EXPECT_EQ(once.at("zeros"), once.at("pruned"));  // a dense input: the zeros are the pruned weights
  const auto second = run_crepe(prune_args(dir.file("half"), dir.file("again"), {"--method", "magnitude", "--sparsity", "0.3", "--json"}));
  ASSERT_EQ(second.exit_code, 0) << second.err;
  const auto twice = nlohmann::json::parse(second.out).at("sparsity");
  EXPECT_NEAR(twice.at("overall").get<double>(), 0.3, 1e-3);          // what this run's masks removed
  EXPECT_EQ(twice.at("zeros"), once.at("zeros"));                     // what the weights hold: the first run's zeros
  EXPECT_NEAR(twice.at("zero_fraction").get<double>(), 0.5, 1e-3);
  for (size_t i = 0; i < twice.at("tensors").size(); ++i) {
    EXPECT_EQ(twice.at("tensors")[i].at("zeros"), once.at("tensors")[i].at("zeros")) << i;
  }
  const auto plain = run_crepe(prune_args(dir.file("half"), dir.file("plain"), {"--method", "magnitude", "--sparsity", "0.3"}));
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(plain.out.find("of the written weights are zero"), std::string::npos) << plain.out;
  // The card, what a hub reader sees, says so too.
  const std::string card = read_file(dir.file("again/README.md"));
  EXPECT_NE(card.find("with the zeros the source already had, 50.00% of them are zero"), std::string::npos) << card;
  EXPECT_EQ(read_file(dir.file("half/README.md")).find("the source already had"), std::string::npos);
}

TEST(PruneCli, InterruptedBeforeAnyBlockSaysNothingWasSaved) {
  // Ctrl-C during the dense evaluation, before calibration's first block: no resume offered.
  test::TempDir dir;
  const auto r = run_stopped("-1:int", prune_args(test::shared_path("models/stories260k"), dir.file("out"),
                                                  {"--eval", test::shared_path("data/tinystories-val.txt"), "--eval-max-windows", "4"}));
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_NE(r.err.find("nothing was saved"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("--resume"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir.file("out")));
  EXPECT_FALSE(fs::exists(dir.file("out.partial")));
}

TEST(PruneCli, ResumeAcceptsTheSameFilesSpelledAnotherWay) {
  test::TempDir dir;
  const std::string model = test::shared_path("models/stories260k");
  ASSERT_EQ(run_stopped("1:int", prune_args(model, dir.file("out"), {})).exit_code, 130);
  auto args = prune_args(model + "/", dir.file("out") + "/", {"--resume"});  // trailing slashes
  args[std::find(args.begin(), args.end(), "--calib-data") - args.begin() + 1] = test::shared_path("data/../data/tinystories-val.txt");
  const auto resumed = test::run_crepe(args);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_TRUE(fs::exists(dir.file("out/model.safetensors")));
}

TEST(PruneCli, ResumeRefusesADamagedSavedBlockAndKeepsIt) {
  test::TempDir dir;
  const std::string model = test::shared_path("models/stories260k");
  ASSERT_EQ(run_stopped("1:int", prune_args(model, dir.file("out"), {})).exit_code, 130);
  const std::string block = dir.file("out.partial/block-00000.safetensors");
  std::string bytes = test::read_file(block);
  bytes[bytes.size() - 3] ^= 0x01;  // one bit of one weight: still a finite number
  test::write_file(block, bytes);
  const auto resumed = test::run_crepe(prune_args(model, dir.file("out"), {"--resume"}));
  EXPECT_EQ(resumed.exit_code, 2);
  EXPECT_NE(resumed.err.find("block-00000.safetensors: differs from the file the interrupted run saved"),
            std::string::npos) << resumed.err;
  EXPECT_TRUE(fs::exists(block));
  EXPECT_FALSE(fs::exists(dir.file("out")));
}

TEST(PruneCli, ResumeRefusesAModelRewrittenSinceTheInterruption) {
  // A new fine-tune exported over the old one keeps names, shapes and sizes; its files are newer.
  test::TempDir dir;
  stories_copy(dir, "model");
  ASSERT_EQ(run_stopped("1:int", prune_args(dir.file("model"), dir.file("out"), {})).exit_code, 130);
  const fs::path weights = dir.file("model/model.safetensors");
  fs::last_write_time(weights, fs::last_write_time(weights) + std::chrono::seconds(5));
  const auto resumed = test::run_crepe(prune_args(dir.file("model"), dir.file("out"), {"--resume"}));
  EXPECT_EQ(resumed.exit_code, 2);
  EXPECT_NE(resumed.err.find("model's files changed"), std::string::npos) << resumed.err;
  EXPECT_TRUE(fs::exists(dir.file("out.partial/manifest.json")));  // the saved blocks stay
}

TEST(PruneCli, DenseWeightsInOtherFormatsAreNotCopiedIntoTheOutput) {
  test::TempDir dir;
  stories_copy(dir, "model");
  for (const char* name : {"pytorch_model.bin", "pytorch_model-00001-of-00002.bin", "pytorch_model.bin.index.json",
                           "model.gguf", "flax_model.msgpack"}) {
    test::write_file(dir.file("model") + "/" + name, "dense weights");
  }
  const auto r = test::run_crepe(prune_args(dir.file("model"), dir.file("out"), {"--method", "magnitude"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> written;
  for (const auto& entry : fs::directory_iterator(dir.file("out"))) written.insert(entry.path().filename().string());
  std::set<std::string> expected = {"crepe_report.json"};  // the original files and the report
  for (const auto& entry : fs::directory_iterator(test::shared_path("models/stories260k"))) {
    expected.insert(entry.path().filename().string());
  }
  EXPECT_EQ(written, expected);
}

TEST(PruneCli, CalibrationDataThatIsNotAFileIsAnInputError) {
  test::TempDir dir;
  const std::string model = test::shared_path("models/stories260k");
  fs::create_directory(dir.file("folder"));
  for (const std::string& data : {dir.file("folder"), std::string("/dev/null")}) {
    auto args = prune_args(model, dir.file("out"), {});
    args[std::find(args.begin(), args.end(), "--calib-data") - args.begin() + 1] = data;
    const auto r = test::run_crepe(args);
    EXPECT_EQ(r.exit_code, 2) << data << ": " << r.err;
    EXPECT_NE(r.err.find(data), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir.file("out")));
  }
}

TEST(PruneCli, SameCommandTwiceGivesByteIdenticalOutput) {
  test::TempDir dir;
  const std::string model = test::shared_path("models/mini-llama-6m");
  ASSERT_EQ(test::run_crepe(prune_args(model, dir.file("a"), {"--method", "sparsegpt"})).exit_code, 0);
  ASSERT_EQ(test::run_crepe(prune_args(model, dir.file("b"), {"--method", "sparsegpt"})).exit_code, 0);
  EXPECT_EQ(test::read_file(dir.file("a/model.safetensors")), test::read_file(dir.file("b/model.safetensors")));
}

}  // namespace
}  // namespace crepe

namespace crepe {
namespace {

// stories260k split into two shards with an index, as large checkpoints come.
std::string make_sharded_copy(const test::TempDir& dir) {
  namespace fs = std::filesystem;
  const std::string source = test::shared_path("models/stories260k");
  const std::string target = dir.file("sharded");
  fs::create_directories(target);
  for (const char* file : {"config.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json"}) {
    fs::copy_file(source + "/" + file, target + "/" + file);
  }
  const auto file = io::SafetensorsFile::open(source + "/model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> first, second;
  nlohmann::json index = {{"metadata", {{"total_size", file->file_size()}}}, {"weight_map", nlohmann::json::object()}};
  for (const auto& info : file->tensors()) {
    const bool early = info.name.find("layers.3") == std::string::npos && info.name.find("layers.4") == std::string::npos;
    (early ? first : second).emplace_back(info.name, file->load(info.name));
    index["weight_map"][info.name] = early ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  io::write_safetensors(target + "/model-00001-of-00002.safetensors", first, {{"format", "pt"}});
  io::write_safetensors(target + "/model-00002-of-00002.safetensors", second, {{"format", "pt"}});
  test::write_file(target + "/model.safetensors.index.json", index.dump(2));
  return target;
}

TEST(PruneCli, ShardedCheckpointsKeepTheirShardsAndIndex) {
  test::TempDir dir;
  const std::string model = make_sharded_copy(dir);
  const auto same = test::run_crepe(prune_args(model, dir.file("zero"), {"--sparsity", "0"}));
  ASSERT_EQ(same.exit_code, 0) << same.err;
  for (const char* file : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                           "model.safetensors.index.json"}) {
    EXPECT_EQ(test::read_file(dir.file(std::string("zero/") + file)), test::read_file(model + "/" + file)) << file;
  }
  const auto pruned = test::run_crepe(prune_args(model, dir.file("half"), {"--json"}));
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  const io::Checkpoint out = io::Checkpoint::open(dir.file("half"));
  EXPECT_TRUE(out.tensors().is_sharded());
  EXPECT_EQ(out.tensors().shard_files().size(), 2u);
  const at::Tensor w = out.tensors().load("model.layers.4.mlp.down_proj.weight");
  EXPECT_EQ((w == 0).sum().item<int64_t>(), prune::pruned_count(0.5, w.numel()));
  EXPECT_FALSE(std::filesystem::exists(dir.file("half/model.safetensors")));
}

}  // namespace
}  // namespace crepe
