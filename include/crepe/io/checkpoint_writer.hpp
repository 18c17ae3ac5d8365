#pragma once
// Writes a checkpoint that mirrors a source checkpoint: same tensor names, dtypes, shard layout and
// index, the config/tokenizer/generation files copied, and every tensor not explicitly replaced
// copied byte for byte. Weights the source also holds in other formats (pytorch_model*.bin and
// the like) are not copied: they are the dense model.
//
// Everything goes to a temporary directory next to the output (".NAME.crepe-tmp-XXXXXX") and is
// renamed to the output only by commit(), when every tensor and file is complete; a writer
// destroyed before that removes its temporary directory, and one killed before that leaves it to
// the next writer of the same output, which removes it (see io/output_paths.hpp). The source directory is never written:
// an output equal to, or inside, the source is refused.
#include <ATen/core/Tensor.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "crepe/io/checkpoint.hpp"
#include "crepe/io/output_paths.hpp"
#include "crepe/io/safetensors.hpp"

namespace crepe::io {

// What crepe writes beside the weights. An input's copies belong to the run that made it and are
// never carried into a new output (a stale permutation file would describe other masks).
constexpr const char* kReportFileName = "crepe_report.json";
constexpr const char* kPermutationFileName = "crepe_permutation.json";

class CheckpointWriter {
 public:
  // InputError when out_dir exists (unless `force`), equals or lies inside the source directory, or
  // its parent cannot be created.
  CheckpointWriter(const Checkpoint& source, std::string out_dir, bool force);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // A replacement value for a source tensor (converted to its stored dtype; shape must match).
  void put(const std::string& name, const at::Tensor& tensor);
  // The source tensor's bytes, unchanged.
  void copy_unchanged(const std::string& name);
  bool written(const std::string& name) const { return written_.count(name) > 0; }
  // An extra file in the output directory (e.g. crepe_report.json), written at commit.
  void add_file(const std::string& name, const std::string& contents);

  // Copies every tensor not yet written, commits the shards, copies the index and side files,
  // writes extra files, then renames the temporary directory to the output.
  void commit();

  const std::string& out_dir() const { return out_dir_; }
  const std::string& temp_dir() const { return temp_dir_; }

 private:
  SafetensorsWriter& shard_writer(const std::string& name);
  void copy_side_files() const;

  const Checkpoint& source_;
  std::string out_dir_;
  std::string temp_dir_;
  TemporaryClaim temp_claim_;  // held until commit: a live writer's temporary is never taken for abandoned
  bool force_;
  bool committed_ = false;
  std::vector<std::unique_ptr<SafetensorsWriter>> shards_;
  std::set<std::string> written_;
  std::vector<std::pair<std::string, std::string>> extra_files_;
};

}  // namespace crepe::io
