#include "crepe/io/checkpoint_writer.hpp"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "crepe/core/error.hpp"
#include "crepe/io/output_paths.hpp"

namespace crepe::io {
namespace {

namespace fs = std::filesystem;

constexpr const char* kIndexName = "model.safetensors.index.json";

// Weights in the other formats a Hugging Face directory may also hold (PyTorch, TensorFlow, Flax,
// GGUF, ONNX) and their indexes: dense copies that a loader preferring them would pick over the
// pruned safetensors.
bool is_other_weight_format(const fs::path& path) {
  const std::string name = path.filename().string(), ext = path.extension().string();
  for (const char* weights : {".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx"}) {
    if (ext == weights) return true;
  }
  for (const char* prefix : {"pytorch_model", "tf_model", "flax_model"}) {
    if (name.rfind(prefix, 0) == 0) return true;  // their .index.json files
  }
  return false;
}

// Files that travel with a checkpoint: everything at the top level but the weights (in any format),
// their index, and an earlier crepe run's own files.
bool is_side_file(const fs::directory_entry& entry) {
  if (!entry.is_regular_file()) return false;
  const std::string name = entry.path().filename().string();
  return entry.path().extension() != ".safetensors" && name != kIndexName && name != kReportFileName &&
         name != kPermutationFileName && !is_other_weight_format(entry.path());
}

void write_whole_file(const fs::path& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
  out.flush();
  require(static_cast<bool>(out), path.string(), "cannot write file (disk full or not writable?)");
}

}  // namespace

CheckpointWriter::CheckpointWriter(const Checkpoint& source, std::string out_dir, bool force)
    : source_(source), out_dir_(std::move(out_dir)), force_(force) {
  check_output_directory(out_dir_, {source.dir()}, force_);
  const fs::path out = normalised_path(out_dir_);
  std::error_code ec;
  fs::create_directories(out.parent_path(), ec);
  require(!ec, out.parent_path().string(), "cannot create directory: " + ec.message());
  remove_abandoned_temporaries(out_dir_, OutputForm::Directory);
  temp_dir_ = create_temporary_directory(out_dir_, temp_claim_);
  try {
    const TensorStore& store = source.tensors();
    for (size_t i = 0; i < store.shard_files().size(); ++i) {
      const SafetensorsFile& shard = store.shard(i);
      std::vector<SafetensorsWriter::Entry> layout;
      for (const TensorInfo& info : shard.tensors()) layout.push_back({info.name, info.dtype, info.shape});
      shards_.push_back(std::make_unique<SafetensorsWriter>((fs::path(temp_dir_) / store.shard_files()[i]).string(),
                                                            std::move(layout), shard.metadata()));
    }
  } catch (...) {  // no destructor runs for a constructor that throws
    shards_.clear();
    std::error_code ignored;
    fs::remove_all(temp_dir_, ignored);
    throw;
  }
}

CheckpointWriter::~CheckpointWriter() {
  if (committed_) return;
  shards_.clear();  // closes and removes the shards' own temporary files first
  std::error_code ignored;
  fs::remove_all(temp_dir_, ignored);
}

SafetensorsWriter& CheckpointWriter::shard_writer(const std::string& name) {
  return *shards_.at(source_.tensors().shard_of(name));
}

void CheckpointWriter::put(const std::string& name, const at::Tensor& tensor) {
  shard_writer(name).put(name, tensor);
  written_.insert(name);
}

void CheckpointWriter::copy_unchanged(const std::string& name) {
  const TensorStore& store = source_.tensors();
  const SafetensorsFile& shard = store.shard(store.shard_of(name));
  shard_writer(name).put_raw(name, shard.raw(name), shard.info(name).nbytes());
  written_.insert(name);
}

void CheckpointWriter::add_file(const std::string& name, const std::string& contents) {
  extra_files_.emplace_back(name, contents);
}

void CheckpointWriter::copy_side_files() const {
  for (const auto& entry : fs::directory_iterator(source_.dir())) {
    if (entry.is_regular_file() && is_other_weight_format(entry.path())) {
      spdlog::info("not copied: {} (unpruned weights in another format)", entry.path().filename().string());
    }
    if (!is_side_file(entry)) continue;
    std::error_code ec;
    const fs::path target = fs::path(temp_dir_) / entry.path().filename();
    fs::copy_file(entry.path(), target, ec);
    require(!ec, entry.path().string(), "cannot copy to the output: " + ec.message());
    // A read-only input (a shared model store) should not make the user's output read-only.
    fs::permissions(target, fs::perms::owner_write, fs::perm_options::add, ec);
  }
  if (source_.tensors().is_sharded()) {
    std::error_code ec;
    fs::copy_file(fs::path(source_.dir()) / kIndexName, fs::path(temp_dir_) / kIndexName, ec);
    require(!ec, kIndexName, "cannot copy to the output: " + ec.message());
  }
}

void CheckpointWriter::commit() {
  const TensorStore& store = source_.tensors();
  for (const std::string& name : store.names()) {
    if (!written(name)) copy_unchanged(name);
  }
  // A shard may hold tensors its index does not list: not part of the checkpoint for the reader,
  // but the output mirrors the shards, so they pass through unchanged too.
  for (size_t i = 0; i < shards_.size(); ++i) {
    const SafetensorsFile& shard = store.shard(i);
    for (const TensorInfo& info : shard.tensors()) {
      const bool listed_here = store.contains(info.name) && store.shard_of(info.name) == i;
      if (!listed_here) shards_[i]->put_raw(info.name, shard.raw(info.name), info.nbytes());
    }
  }
  for (auto& shard : shards_) shard->commit();
  copy_side_files();
  for (const auto& [name, contents] : extra_files_) write_whole_file(fs::path(temp_dir_) / name, contents);

  move_into_place(temp_dir_, out_dir_);
  committed_ = true;
  temp_claim_ = TemporaryClaim();  // the directory is the output now, which later writes lock as a folder
}

}  // namespace crepe::io
