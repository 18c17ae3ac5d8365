// Hostile and broken input through the real binary. Every case must end the way the house rules say
// (include/crepe/core/error.hpp): exit code 2 and exactly one line on stderr, "crepe: error: WHERE:
// WHAT", naming the file or option and saying what is wrong; `crepe prune` leaves no output directory
// (nor a temporary one) behind; and no input file changes by a single byte.
//
// Hand-made inputs live in tests/data/bad/ (each file described in its README.md). A directory there
// is laid over a writable copy of ../shared/models/stories260k, so a case holds only the file it
// breaks. Damage that needs the real weights (truncation, patched headers, NaN/Inf) is done to that
// copy at test time, so the 1 MB model never enters the repository.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "biased_model.hpp"
#include "test_support.hpp"

namespace crepe {
namespace {

namespace fs = std::filesystem;
using test::read_file;
using test::run_crepe;
using test::shared_path;
using test::write_file;

std::string bad_path(const std::string& name) { return test::source_dir() + "/tests/data/bad/" + name; }
std::string stories() { return shared_path("models/stories260k"); }
std::string calib_text() { return shared_path("data/tinystories-val.txt"); }

// Where a case runs. `model` starts as the shared (read-only) model and becomes a private copy once a
// case needs to break something in it.
struct Env {
  std::shared_ptr<test::TempDir> scratch = std::make_shared<test::TempDir>();
  std::string model = stories();
  std::string out = scratch->file("out");  // prune's --out: must never appear
  std::string stdin_text;                  // for `crepe tokenize`
};

struct BadCase {
  std::string name;
  std::function<void(Env&)> setup;  // builds the broken input (may be empty)
  std::function<std::vector<std::string>(const Env&)> args;
  std::function<std::string(const Env&)> names;  // what the line must name: a file or an option
  std::string phrase;                             // what it must say
};

// gtest prints a failing case by its name rather than as raw bytes.
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

// ---- building broken checkpoints ----------------------------------------------------------------

// A writable copy of stories260k with the files of tests/data/bad/OVERLAY laid over it.
void copy_model(Env& env, const std::string& overlay = "") {
  env.model = env.scratch->file("model");
  fs::create_directory(env.model);
  for (const auto& entry : fs::directory_iterator(stories())) {
    if (!entry.is_regular_file()) continue;
    const fs::path target = fs::path(env.model) / entry.path().filename();
    fs::copy_file(entry.path(), target);
    fs::permissions(target, fs::perms::owner_write, fs::perm_options::add);
  }
  if (overlay.empty()) return;
  for (const auto& entry : fs::directory_iterator(bad_path(overlay))) {
    const fs::path target = fs::path(env.model) / entry.path().filename();
    fs::copy_file(entry.path(), target, fs::copy_options::overwrite_existing);
    fs::permissions(target, fs::perms::owner_write, fs::perm_options::add);
  }
}

std::string weights(const Env& env) { return env.model + "/model.safetensors"; }

void write_at(const std::string& path, uint64_t offset, const void* bytes, size_t size) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(size));
  ASSERT_TRUE(file.good()) << path;
}

// Overwrites element `index` of an F32 tensor with `value`, through the file's own header.
void patch_element(const std::string& path, const std::string& tensor, int64_t index, float value) {
  const std::string bytes = read_file(path);
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, header_length));
  ASSERT_EQ(header.at(tensor).at("dtype"), "F32");
  const uint64_t begin = header.at(tensor).at("data_offsets").at(0);
  write_at(path, 8 + header_length + begin + 4 * static_cast<uint64_t>(index), &value, sizeof value);
}

// Replaces the first `from` in the header text with `to` (same length, so nothing moves).
void patch_header_text(const std::string& path, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  const std::string bytes = read_file(path);
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  const size_t at = bytes.find(from, 8);
  ASSERT_TRUE(at != std::string::npos && at < 8 + header_length) << from;
  write_at(path, at, to.data(), to.size());
}

void set_header_length(const std::string& path, uint64_t length) { write_at(path, 0, &length, sizeof length); }

// Moves model.safetensors to a shard of a sharded checkpoint (index listing every tensor).
void shard_model(Env& env, const std::string& shard) {
  const std::string bytes = read_file(weights(env));
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  const auto header = nlohmann::json::parse(bytes.substr(8, header_length));  // outlives the loop
  for (const auto& [name, entry] : header.items()) {
    if (name != "__metadata__") index["weight_map"][name] = shard;
  }
  fs::rename(weights(env), env.model + "/" + shard);
  write_file(env.model + "/model.safetensors.index.json", index.dump(2));
}

// ---- commands -------------------------------------------------------------------------------------

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& extra) {
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> eval_args(const Env& env, const std::vector<std::string>& extra = {}) {
  return with({"eval", "--model", env.model, "--data", calib_text(), "--seqlen", "64", "--max-windows", "1"}, extra);
}

std::vector<std::string> prune_args(const Env& env, const std::vector<std::string>& extra = {}) {
  return with({"prune", "--model", env.model, "--out", env.out, "--calib-data", calib_text(), "--nsamples", "4",
               "--seqlen", "64"},
              extra);
}
// For magnitude and ri, which take no calibration (calibration options would draw a warning).
std::vector<std::string> uncalibrated_prune_args(const Env& env, const std::vector<std::string>& extra) {
  return with({"prune", "--model", env.model, "--out", env.out}, extra);
}

// The file, relative to the model directory, that the line must name.
std::function<std::string(const Env&)> model_file(const std::string& relative) {
  return [relative](const Env& env) { return relative.empty() ? env.model : env.model + "/" + relative; };
}

std::function<std::string(const Env&)> literal(const std::string& text) {
  return [text](const Env&) { return text; };
}

// A broken checkpoint fails `eval` and `prune` alike.
void add_for_both(std::vector<BadCase>& cases, const std::string& name, std::function<void(Env&)> setup,
                  std::function<std::string(const Env&)> names, const std::string& phrase,
                  const std::vector<std::string>& extra = {}) {
  cases.push_back({"Eval_" + name, setup, [extra](const Env& env) { return eval_args(env, extra); }, names, phrase});
  cases.push_back({"Prune_" + name, setup, [extra](const Env& env) { return prune_args(env, extra); }, names, phrase});
}

std::function<void(Env&)> overlay(const std::string& dir) {
  return [dir](Env& env) { copy_model(env, dir); };
}

// An overlay that brings an index: the weights become its one shard (a model.safetensors beside an
// index would be read instead of it, as transformers does).
std::function<void(Env&)> index_overlay(const std::string& dir) {
  return [dir](Env& env) {
    copy_model(env, dir);
    fs::rename(env.model + "/model.safetensors", env.model + "/model-00001-of-00001.safetensors");
  };
}

std::vector<BadCase> bad_cases() {
  std::vector<BadCase> cases;

  // safetensors: hand-made headers (tests/data/bad/safetensors-*/model.safetensors).
  add_for_both(cases, "SafetensorsHeaderInvalidJson", overlay("safetensors-invalid-json"), model_file("model.safetensors"),
               "header is not valid JSON");
  add_for_both(cases, "SafetensorsHeaderLengthPastEnd", overlay("safetensors-header-length"),
               model_file("model.safetensors"), "header length 1000000 runs past the end of the file");
  add_for_both(cases, "SafetensorsOffsetsOutOfRange", overlay("safetensors-offsets-out-of-range"),
               model_file("model.safetensors"), "run past the end of the data section");
  add_for_both(cases, "SafetensorsOverlappingOffsets", overlay("safetensors-overlap"), model_file("model.safetensors"),
               "overlap in the data section");
  add_for_both(cases, "SafetensorsShapeSizeMismatch", overlay("safetensors-size-mismatch"),
               model_file("model.safetensors"), "needs 24 bytes but data_offsets [0, 16] hold 16");
  add_for_both(cases, "SafetensorsUnknownDtypeI64", overlay("safetensors-dtype-i64"), model_file("model.safetensors"),
               "has dtype I64; crepe reads F32, F16, BF16");

  // safetensors: the real weights, damaged at test time.
  add_for_both(cases, "SafetensorsTruncatedInData",
               [](Env& env) {
                 copy_model(env);
                 fs::resize_file(weights(env), fs::file_size(weights(env)) / 2);
               },
               model_file("model.safetensors"), "run past the end of the data section");
  add_for_both(cases, "SafetensorsTruncatedInHeader",
               [](Env& env) {
                 copy_model(env);
                 fs::resize_file(weights(env), 1000);
               },
               model_file("model.safetensors"), "runs past the end of the file (1000 bytes)");
  add_for_both(cases, "SafetensorsEmptyFile",
               [](Env& env) {
                 copy_model(env);
                 fs::resize_file(weights(env), 0);
               },
               model_file("model.safetensors"), "too short for a safetensors header");
  add_for_both(cases, "SafetensorsHugeHeaderLength",
               [](Env& env) {
                 copy_model(env);
                 set_header_length(weights(env), UINT64_MAX);
               },
               model_file("model.safetensors"), "runs past the end of the file");
  add_for_both(cases, "SafetensorsDtypeContradictsSize",
               [](Env& env) {
                 copy_model(env);  // the first F32 entry becomes F16: its byte range is now twice too long
                 patch_header_text(weights(env), "\"F32\"", "\"F16\"");
               },
               model_file("model.safetensors"), "of F16 needs");

  // Sharded checkpoints.
  add_for_both(cases, "IndexNamesMissingShard", index_overlay("index-missing-shard"),
               model_file("model.safetensors.index.json"),
               "names shard 'model-00001-of-00002.safetensors', which does not exist");
  add_for_both(cases, "IndexNamesTensorMissingFromShard", index_overlay("index-missing-tensor"),
               model_file("model.safetensors.index.json"),
               "maps tensor 'model.layers.0.mlp.fused_proj.weight' to shard 'model-00001-of-00001.safetensors', which does not contain it");

  add_for_both(cases, "TensorInTwoShards",
               [](Env& env) {
                 copy_model(env);
                 shard_model(env, "a.safetensors");
                 fs::copy_file(env.model + "/a.safetensors", env.model + "/b.safetensors");
                 const std::string index_path = env.model + "/model.safetensors.index.json";
                 auto index = nlohmann::json::parse(read_file(index_path));
                 index["weight_map"]["model.norm.weight"] = "b.safetensors";
                 write_file(index_path, index.dump(2));
               },
               model_file("model.safetensors.index.json"), "but shard 'a.safetensors' holds a copy too");
  add_for_both(cases, "IndexNamesShardOutsideTheModel",
               [](Env& env) {
                 copy_model(env);
                 shard_model(env, "model-00001-of-00001.safetensors");
                 const std::string index_path = env.model + "/model.safetensors.index.json";
                 auto index = nlohmann::json::parse(read_file(index_path));
                 for (auto& [name, shard] : index["weight_map"].items()) shard = "../model/model-00001-of-00001.safetensors";
                 write_file(index_path, index.dump(2));
               },
               model_file("model.safetensors.index.json"), "which is not a file name in the model directory");

  // config.json.
  add_for_both(cases, "ConfigMissingField", overlay("config-missing-field"), model_file("config.json"),
               "missing field 'hidden_size'");
  add_for_both(cases, "ConfigHeadsDoNotDivideHidden", overlay("config-heads-not-dividing"), model_file("config.json"),
               "num_attention_heads (7) does not divide hidden_size (64)");
  add_for_both(cases, "ConfigKvHeadsDoNotDivideHeads", overlay("config-kv-heads-not-dividing"),
               model_file("config.json"), "num_key_value_heads (3) does not divide num_attention_heads (8)");
  add_for_both(cases, "ConfigUnsupportedArchitecture", overlay("config-architecture"), model_file("config.json"),
               "architecture 'GPT2LMHeadModel' is not supported");
  add_for_both(cases, "ConfigInvalidJson", overlay("config-invalid-json"), model_file("config.json"), "invalid JSON");
  add_for_both(cases, "ConfigWrongFieldType", overlay("config-wrong-type"), model_file("config.json"),
               "field 'model_type' must be a string");
  add_for_both(cases, "ConfigSizesOverflow", overlay("config-huge-dims"), model_file("config.json"),
               "field 'num_attention_heads' is 4294967296, larger than crepe accepts");
  add_for_both(cases, "TensorShapeContradictsConfig", overlay("config-shape-contradiction"), model_file(""),
               "has shape [172, 64], config.json implies [128, 64]");

  // Tensors config.json does not account for: a sixth block (it would stay dense), biases it says
  // are absent (they would be ignored by the forward pass).
  const auto edit_config = [](const std::string& key, nlohmann::json value) {
    return [key, value](Env& env) {
      copy_model(env);
      auto config = nlohmann::json::parse(read_file(env.model + "/config.json"));
      config[key] = value;
      write_file(env.model + "/config.json", config.dump(2));
    };
  };
  add_for_both(cases, "CheckpointHasMoreBlocksThanConfig", edit_config("num_hidden_layers", 4), model_file(""),
               "tensor 'model.layers.4.");
  add_for_both(cases, "CheckpointHasBiasesConfigDoesNotDeclare",
               [](Env& env) {
                 env.model = test::make_biased_copy(*env.scratch, stories(), "model");
                 auto config = nlohmann::json::parse(read_file(env.model + "/config.json"));
                 config["attention_bias"] = false;  // Qwen2-style biases under a plain LLaMA config
                 config["mlp_bias"] = false;
                 write_file(env.model + "/config.json", config.dump(2));
               },
               model_file(""), "is a bias that config.json does not declare");
  // A tokenizer from another model: LLaMA-2's 32,000 tokens for stories260k's 512 embedding rows.
  add_for_both(cases, "TokenizerLargerThanTheEmbedding",
               [](Env& env) {
                 copy_model(env);
                 fs::copy_file(test::shared_path("tokenizers/llama2/tokenizer.model"), env.model + "/tokenizer.model",
                               fs::copy_options::overwrite_existing);
               },
               model_file(""), "but the model has 512 embedding rows");

  // Tokenizer files (read by eval, and by prune for --calib-data).
  add_for_both(cases, "TokenizerJsonInvalid", overlay("tokenizer-json-invalid"), model_file("tokenizer.json"),
               "invalid JSON");
  add_for_both(cases, "TokenizerJsonUnigram", overlay("tokenizer-json-unigram"), model_file("tokenizer.json"),
               "model type \"Unigram\" is not supported");
  add_for_both(cases, "TokenizerJsonWithoutMerges", overlay("tokenizer-json-no-merges"), model_file("tokenizer.json"),
               "the BPE model has no \"merges\"");
  add_for_both(cases, "TokenizerModelGarbage", overlay("tokenizer-model-garbage"), model_file("tokenizer.model"),
               "malformed SentencePiece model");
  cases.push_back({"Tokenize_TokenizerJsonUnigram", nullptr,
                   [](const Env&) {
                     return std::vector<std::string>{"tokenize", "--tokenizer",
                                                     bad_path("tokenizer-json-unigram/tokenizer.json")};
                   },
                   literal(bad_path("tokenizer-json-unigram/tokenizer.json")), "is not supported"});
  cases.push_back({"Tokenize_TokenizerModelGarbage", nullptr,
                   [](const Env&) {
                     return std::vector<std::string>{"tokenize", "--tokenizer",
                                                     bad_path("tokenizer-model-garbage/tokenizer.model")};
                   },
                   literal(bad_path("tokenizer-model-garbage/tokenizer.model")), "malformed SentencePiece model"});

  // NaN/Inf weights, refused with --check-finite (naming the shard file and the tensor).
  const auto nan_in_mlp = [](Env& env) {
    copy_model(env);
    patch_element(weights(env), "model.layers.2.mlp.up_proj.weight", 7, std::numeric_limits<float>::quiet_NaN());
  };
  add_for_both(cases, "NanWeightWithCheckFinite", nan_in_mlp, model_file("model.safetensors"),
               "tensor 'model.layers.2.mlp.up_proj.weight' contains NaN or Inf", {"--check-finite"});
  add_for_both(cases, "InfWeightWithCheckFinite",
               [](Env& env) {
                 copy_model(env);
                 patch_element(weights(env), "model.norm.weight", 63, -std::numeric_limits<float>::infinity());
               },
               model_file("model.safetensors"), "tensor 'model.norm.weight' contains NaN or Inf", {"--check-finite"});
  // Without --check-finite, NaN weights are caught where they reach the calibration activations,
  // before anything is scored on them (block 2's up_proj poisons the input of its down_proj).
  const std::string not_finite = "the calibration activations entering block 2's down_proj are not finite";
  // The run has started (-q keeps its progress lines out of the one line checked); its finished
  // blocks are discarded, since no resume could get past the NaN.
  cases.push_back({"Prune_NanWeightWithoutCheckFinite", nan_in_mlp,
                   [](const Env& env) { return prune_args(env, {"-q"}); }, model_file(""), not_finite});
  // NaN where no calibration activation sees it (the last block's down_proj), or with methods and
  // allocations that read no activations: the weight itself is refused before it is scored.
  const std::string nan_up = "tensor 'model.layers.2.mlp.up_proj.weight' contains NaN or Inf";
  cases.push_back({"Prune_NanWeightInTheLastDownProj",
                   [](Env& env) {
                     copy_model(env);
                     patch_element(weights(env), "model.layers.4.mlp.down_proj.weight", 3,
                                   std::numeric_limits<float>::quiet_NaN());
                   },
                   [](const Env& env) { return prune_args(env, {"-q", "--method", "wanda"}); }, model_file(""),
                   "tensor 'model.layers.4.mlp.down_proj.weight' contains NaN or Inf"});
  cases.push_back({"Prune_NanWeightWithMagnitude", nan_in_mlp,
                   [](const Env& env) { return uncalibrated_prune_args(env, {"-q", "--method", "magnitude"}); }, model_file(""),
                   nan_up});
  cases.push_back({"Prune_NanWeightWithAlphaAllocation", nan_in_mlp,
                   [](const Env& env) { return uncalibrated_prune_args(env, {"-q", "--method", "ri", "--allocation", "alpha"}); },
                   model_file(""), nan_up});
  cases.push_back({"Eval_NanWeightWithoutCheckFinite", nan_in_mlp, [](const Env& env) { return eval_args(env, {"-q"}); },
                   model_file(""), "the evaluation's next-token log-likelihoods are not finite"});
  cases.push_back({"Prune_NanWeightWithEval", nan_in_mlp,
                   [](const Env& env) {
                     return prune_args(env, {"-q", "--eval", calib_text(), "--eval-seqlen", "64", "--eval-max-windows", "1"});
                   },
                   model_file(""), "the evaluation's next-token log-likelihoods are not finite"});
  cases.push_back({"Search_NanWeight", nan_in_mlp,
                   [](const Env& env) {
                     return std::vector<std::string>{"search", "--model", env.model, "--out", env.out, "--calib-data",
                                                     calib_text(), "--nsamples", "4", "--seqlen", "64"};
                   },
                   model_file(""), not_finite});
  // Search requests that would destroy their own cache, or silently start over.
  cases.push_back({"Search_StatsIsTheOutput", nullptr,
                   [](const Env& env) {
                     return std::vector<std::string>{"search", "--model", env.model, "--out", env.out, "--calib-data",
                                                     calib_text(), "--stats", env.out};
                   },
                   literal("--stats"), "is also where the search writes"});
  cases.push_back({"Search_StatsIsTheTrace", nullptr,
                   [](const Env& env) {
                     return std::vector<std::string>{"search", "--model", env.model, "--out", env.out, "--calib-data",
                                                     calib_text(), "--stats", env.out + ".trace.json"};
                   },
                   literal("--stats"), "is also where the search writes"});
  cases.push_back({"Search_ResumeWithObjectivePpl", nullptr,
                   [](const Env& env) {
                     return std::vector<std::string>{"search", "--model", env.model, "--out", env.out, "--calib-data",
                                                     calib_text(), "--objective", "ppl", "--eval-data", calib_text(), "--resume"};
                   },
                   literal("--resume"), "--objective ppl keeps no trace, so there is nothing to continue"});
  cases.push_back({"Eval_NanWeightInShardWithCheckFinite",
                   [](Env& env) {
                     copy_model(env);
                     patch_element(weights(env), "model.layers.4.self_attn.k_proj.weight", 0,
                                   std::numeric_limits<float>::quiet_NaN());
                     shard_model(env, "model-00001-of-00001.safetensors");
                   },
                   [](const Env& env) { return eval_args(env, {"--check-finite"}); },
                   model_file("model-00001-of-00001.safetensors"),
                   "tensor 'model.layers.4.self_attn.k_proj.weight' contains NaN or Inf"});

  // Text: calibration and evaluation data.
  cases.push_back({"Prune_CalibrationShorterThanOneWindow", nullptr,
                   [](const Env& env) {
                     return std::vector<std::string>{"prune", "--model", env.model, "--out", env.out, "--calib-data",
                                                     bad_path("calib-tiny.txt"), "--seqlen", "256"};
                   },
                   literal(bad_path("calib-tiny.txt")), "no document has more than 256 tokens"});
  cases.push_back({"Prune_CalibrationMalformedJsonl", nullptr,
                   [](const Env& env) {
                     return std::vector<std::string>{"prune", "--model", env.model, "--out", env.out, "--calib-data",
                                                     bad_path("calib-malformed.jsonl"), "--seqlen", "64"};
                   },
                   literal(bad_path("calib-malformed.jsonl") + ":2"), "invalid JSON Lines record"});
  cases.push_back({"Eval_TextShorterThanOneWindow", nullptr,
                   [](const Env& env) {
                     return std::vector<std::string>{"eval", "--model", env.model, "--data", bad_path("eval-short.txt"),
                                                     "--seqlen", "256"};
                   },
                   literal(bad_path("eval-short.txt")), "fewer than the sequence length 256"});

  // Output options: an output inside the input is refused before anything is written there.
  cases.push_back({"Prune_OutputInsideInput", overlay(""),
                   [](const Env& env) {
                     return std::vector<std::string>{"prune", "--model", env.model, "--out", env.model + "/pruned",
                                                     "--calib-data", calib_text(), "--nsamples", "4", "--seqlen", "64"};
                   },
                   model_file("pruned"), "lies inside, the input"});

  // Option values.
  const auto prune_option = [&cases](const std::string& name, const std::vector<std::string>& extra,
                                     const std::string& option, const std::string& phrase) {
    cases.push_back({"Prune_" + name, nullptr, [extra](const Env& env) { return prune_args(env, extra); },
                     literal(option), phrase});
  };
  prune_option("SparsityOne", {"--sparsity", "1"}, "--sparsity", "must be in [0, 1)");
  prune_option("SparsityNegative", {"--sparsity", "-0.1"}, "--sparsity", "must be in [0, 1)");
  prune_option("SparsityNotANumber", {"--sparsity", "half"}, "--sparsity", "half");
  prune_option("PatternNEqualsM", {"--pattern", "4:4"}, "--pattern", "needs 0 < N < M");
  prune_option("PatternContradictsSparsity", {"--pattern", "2:4", "--sparsity", "0.7"}, "--sparsity",
               "0.7 contradicts --pattern 2:4, which prunes exactly 2 of every 4 (0.5)");
  prune_option("OwlLambdaInfinite", {"--allocation", "owl", "--owl-lambda", "inf"}, "--owl-lambda", "must be in [0, 0.5]");
  prune_option("OwlLambdaBeyondTheRange", {"--allocation", "owl", "--owl-lambda", "1e20"}, "--owl-lambda",
               "must be in [0, 0.5] (the densities spread over twice it: 0.5 spans all of [0, 1]), got 1e+20");
  prune_option("DlpAlphaBeyondTheRange", {"--allocation", "dlp", "--dlp-alpha", "0.6"}, "--dlp-alpha", "got 0.6");
  prune_option("PatternNAboveM", {"--pattern", "5:4"}, "--pattern", "needs 0 < N < M");
  // stories260k's rows have 64 inputs: 1:1000 would prune none of them and report a 0% model.
  prune_option("PatternWiderThanTheRows", {"--pattern", "1:1000"}, "--pattern",
               "1:1000 prunes nothing in q/k/v_proj, gate_proj and up_proj");
  prune_option("ActPowerHuge", {"--act-power", "1e300"}, "--act-power", "must be in [0, 1], got 1e+300");
  prune_option("EvenKernelSize", {"--kernel-size", "4"}, "--kernel-size", "must be an odd integer from 1 to 1048575");
  // CLI11 saturates an integer past int64_t at INT64_MAX, which is odd: the bound refuses it.
  prune_option("HugeKernelSize", {"--kernel-size", "99999999999999999999"}, "--kernel-size",
               "must be an odd integer from 1 to 1048575, got 9223372036854775807");
  prune_option("UnknownMethod", {"--method", "obs"}, "--method", "unknown method 'obs'");
  prune_option("UnknownAllocation", {"--allocation", "greedy"}, "--allocation", "unknown allocation 'greedy'");
  prune_option("NegativeNsamples", {"--nsamples", "-3"}, "--nsamples", "-3");
  prune_option("FractionalNsamples", {"--nsamples", "4.7"}, "--nsamples", "must be a whole number in digits, got 4.7");
  // An unset shell variable: calibrating on self-generated text instead would change the run silently.
  cases.push_back({"Prune_EmptyCalibrationPath", nullptr,
                   [](const Env& env) {
                     return std::vector<std::string>{"prune", "--model", env.model, "--out", env.out, "--calib-data", ""};
                   },
                   literal("--calib-data"), "needs a value, got an empty string"});
  cases.push_back({"Eval_DeviceAsData", nullptr,
                   [](const Env& env) { return std::vector<std::string>{"eval", "--model", env.model, "--data", "/dev/zero", "--seqlen", "64", "-q"}; },
                   literal("/dev/zero"), "is a device, expected a text file"});
  prune_option("NegativeSeed", {"--seed", "-1"}, "--seed", "must be a whole number from 0 to 18446744073709551615");
  prune_option("SeedTooLarge", {"--seed", "18446744073709551616"}, "--seed", "must be a whole number");
  // A device index no machine here has: refused on CPU-only builds and on GPU machines alike.
  prune_option("DeviceCuda", {"--device", "cuda:99"}, "--device", "no CUDA device");
  prune_option("NegativeDeviceActivations", {"--max-device-activations", "-1"}, "--max-device-activations", "-1");
  prune_option("UnknownOption", {"--sparsty", "0.5"}, "--sparsty", "not expected");
  cases.push_back({"Eval_DeviceCuda", nullptr, [](const Env& env) { return eval_args(env, {"--device", "cuda:99"}); },
                   literal("--device"), "no CUDA device"});
  cases.push_back({"Eval_SeqlenTooSmall", nullptr, [](const Env& env) { return eval_args(env, {"--seqlen", "1"}); },
                   literal("--seqlen"), "not in range"});
  cases.push_back({"Eval_NegativeMaxWindows", nullptr,
                   [](const Env& env) { return eval_args(env, {"--max-windows", "-2"}); }, literal("--max-windows"),
                   "-2"});
  cases.push_back({"Eval_ThreadsBeyondTheLimit", nullptr,
                   [](const Env& env) { return with({"--threads", "5000"}, eval_args(env)); }, literal("--threads"),
                   "not in range"});

  // Files that are not what they should be: a directory for a JSON file, a FIFO for the weights
  // (whose open would wait for a writer forever).
  add_for_both(cases, "ConfigJsonIsADirectory",
               [](Env& env) {
                 copy_model(env);
                 fs::remove(env.model + "/config.json");
                 fs::create_directory(env.model + "/config.json");
               },
               model_file("config.json"), "is a directory, not a file");
  cases.push_back({"Inspect_WeightsAreAFifo",
                   [](Env& env) {
                     copy_model(env);
                     fs::remove(weights(env));
                     ASSERT_EQ(::mkfifo(weights(env).c_str(), 0600), 0);
                   },
                   [](const Env& env) { return std::vector<std::string>{"inspect", "--model", env.model}; },
                   [](const Env& env) { return weights(env); }, "not a regular file"});
  // config.json values that only show once used: a BOS id past the vocabulary (self-generated
  // calibration starts from it) and a context of one token.
  const int64_t vocab_size = nlohmann::json::parse(read_file(stories() + "/config.json")).at("vocab_size").get<int64_t>();
  add_for_both(cases, "BosTokenOutsideTheVocabulary", edit_config("bos_token_id", vocab_size), model_file("config.json"),
               "outside the vocabulary");
  add_for_both(cases, "MaxPositionEmbeddingsOne", edit_config("max_position_embeddings", 1), model_file("config.json"),
               "max_position_embeddings");
  // An output that is a symlink to nowhere would fail only at the final rename, after all the work.
  cases.push_back({"Prune_OutIsADanglingSymlink",
                   [](Env& env) { fs::create_symlink(env.scratch->file("nowhere"), env.out); },
                   [](const Env& env) { return prune_args(env); }, [](const Env& env) { return env.out; },
                   "leads nowhere"});
  return cases;
}

// Output that could not be written (here a full device) is an error, not a result: exit code 2
// and a line that says so, whatever the command printed before.
TEST(BadOutput, StdoutThatCannotBeWrittenIsAnError) {
  for (const char* command : {"inspect", "tokenize"}) {
    test::TempDir dir;
    const std::string err = dir.file("err.txt");
    const std::string line = std::string("printf 'Once upon a time' | '") + CREPE_BINARY + "' " + command + " --" +
                             (std::string(command) == "inspect" ? "model" : "tokenizer") + " '" + stories() +
                             (std::string(command) == "inspect" ? "" : "/tokenizer.model") + "' > /dev/full 2> '" + err + "'";
    const int status = std::system(line.c_str());
    ASSERT_TRUE(WIFEXITED(status)) << line;
    EXPECT_EQ(WEXITSTATUS(status), 2) << command << ": " << read_file(err);
    EXPECT_NE(read_file(err).find("crepe: error: standard output"), std::string::npos) << read_file(err);
  }
}

// Standard input that cannot be read (here a directory) is an error, not an empty text: tokenize
// would print a lone BOS id.
TEST(BadInputStdin, ADirectoryOnStandardInputIsAnError) {
  test::TempDir dir;
  const std::string out = dir.file("out.txt"), err = dir.file("err.txt");
  const std::string line = std::string("'") + CREPE_BINARY + "' tokenize --tokenizer '" + stories() + "/tokenizer.model' < '" +
                           dir.path() + "' > '" + out + "' 2> '" + err + "'";
  const int status = std::system(line.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << line;
  EXPECT_EQ(WEXITSTATUS(status), 2) << read_file(err);
  EXPECT_EQ(read_file(err), "crepe: error: standard input: cannot be read: Is a directory\n");
  EXPECT_EQ(read_file(out), "");
}

// ---- the check ------------------------------------------------------------------------------------

// Every existing file the command line names (directories recursively), by content.
std::map<std::string, std::string> snapshot_inputs(const std::vector<std::string>& args, const std::string& out) {
  std::map<std::string, std::string> files;
  std::error_code ec;
  for (const std::string& arg : args) {
    if (arg == out || !fs::exists(arg, ec)) continue;
    if (fs::is_regular_file(arg, ec)) files[arg] = read_file(arg);
    if (!fs::is_directory(arg, ec)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(arg)) {
      files[entry.path().string()] = entry.is_regular_file() ? read_file(entry.path().string()) : "<directory>";
    }
  }
  return files;
}

std::set<std::string> entries(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

class BadInput : public testing::TestWithParam<BadCase> {};

TEST_P(BadInput, ExitsWithCode2AndOneLineNamingTheProblem) {
  const BadCase& c = GetParam();
  Env env;
  if (c.setup) ASSERT_NO_FATAL_FAILURE(c.setup(env));
  const std::vector<std::string> args = c.args(env);
  const auto before = snapshot_inputs(args, env.out);
  ASSERT_FALSE(before.empty());
  const std::set<std::string> scratch_before = entries(env.scratch->path());

  const test::CommandResult r = run_crepe(args, env.stdin_text);

  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("crepe: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(c.names(env)), std::string::npos) << "should name " << c.names(env) << ":\n" << r.err;
  EXPECT_NE(r.err.find(c.phrase), std::string::npos) << "should say \"" << c.phrase << "\":\n" << r.err;
  EXPECT_EQ(r.out, "") << "nothing may be presented as a result";
  EXPECT_FALSE(fs::exists(env.out)) << "prune must not leave an output directory";
  // Nor anything else beside it: no temporary directory, no resume state of a run that never started.
  EXPECT_EQ(entries(env.scratch->path()), scratch_before) << "the command left something in " << env.scratch->path();
  EXPECT_TRUE(snapshot_inputs(args, env.out) == before) << "an input file changed";
}

INSTANTIATE_TEST_SUITE_P(Cases, BadInput, testing::ValuesIn(bad_cases()),
                         [](const testing::TestParamInfo<BadCase>& info) { return info.param.name; });

// Every file of tests/data/bad/ (the fuzz regressions aside) is used by a case above.
TEST(BadInputCorpus, EveryFileIsSmallAndUsed) {
  const std::string source = read_file(test::source_dir() + "/tests/cli/test_bad_input.cpp");
  for (const auto& entry : fs::directory_iterator(bad_path(""))) {
    const std::string name = entry.path().filename().string();
    if (name == "README.md" || name == "fuzz-regressions") continue;
    EXPECT_NE(source.find("\"" + name + "\""), std::string::npos) << name << " is used by no case";
    const std::vector<fs::path> files =
        entry.is_directory() ? std::vector<fs::path>(fs::directory_iterator(entry.path()), fs::directory_iterator())
                             : std::vector<fs::path>{entry.path()};
    for (const fs::path& file : files) EXPECT_LT(fs::file_size(file), 8192u) << file;
  }
}

// --check-finite passes a clean checkpoint, and the run goes on to its result.
TEST(CheckFinite, CleanCheckpointPasses) {
  const auto r = run_crepe({"eval", "--model", stories(), "--data", calib_text(), "--seqlen", "64", "--max-windows",
                            "2", "--check-finite", "-q"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("perplexity"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace crepe
