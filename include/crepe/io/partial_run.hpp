#pragma once
// The blocks an unfinished `crepe prune` has completed, kept in OUT.partial/ beside the output so
// that `--resume` can continue after Ctrl-C, a kill or a crash, losing at most the block in progress.
//
// Layout: manifest.json (the request it belongs to: options, calibration setup and a fingerprint of
// the input; plus one record per completed block) and block-NNNNN.safetensors (that block's pruned
// weights in their stored dtype). A block file is written completely before the manifest names it,
// and both are replaced atomically, so the directory is consistent at every instant. The manifest
// records each block file's checksum; a resume checks them all before any work.
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "crepe/io/checkpoint.hpp"

namespace crepe::io {

// A cheap fingerprint of a checkpoint: config.json and every shard's name, size, modification time
// and header bytes. Hashing the weights themselves would read the whole model (minutes for 70B);
// the modification time catches a model rewritten in place with the same shapes (a new fine-tune).
std::string checkpoint_fingerprint(const Checkpoint& checkpoint);
// The same for one data file: its size and modification time ("" when it is not a regular file:
// a pipe, whose contents cannot be fingerprinted without reading them).
std::string file_fingerprint(const std::string& path);

// What an interrupted run recorded against the request resuming it: InputError naming `where` at
// the first key of `request` whose value differs, saying what it was and is (for keys in `explain`,
// why in words instead), followed by `restart` (how to start over instead).
void require_same_request(const nlohmann::json& recorded, const nlohmann::json& request, const std::string& where,
                          const std::string& restart, const std::map<std::string, std::string>& explain = {});

class PartialRun {
 public:
  // Without `resume`, an existing OUT.partial is an InputError (it holds resumable work) unless
  // `force`, which discards it. With `resume`, OUT.partial must exist and its request must equal
  // `request`, else InputError saying what differs, and every saved block file must match its
  // checksum, else InputError naming the file.
  PartialRun(const std::string& out_dir, nlohmann::json request, bool resume, bool force);
  // Where the finished blocks of a run writing `out_dir` are kept: OUT.partial beside it.
  static std::string dir_for(const std::string& out_dir);

  bool has_block(int64_t block) const;
  int64_t completed_blocks() const;
  std::vector<std::pair<std::string, at::Tensor>> load_block(int64_t block) const;
  const nlohmann::json& block_record(int64_t block) const;
  void save_block(int64_t block, const std::vector<std::pair<std::string, at::Tensor>>& tensors, nlohmann::json record);
  // Deletes the directory (after the output was committed, or when the run failed for good).
  void remove();
  const std::string& dir() const { return dir_; }

 private:
  std::string block_path(int64_t block) const;
  void write_manifest() const;

  std::string dir_;
  nlohmann::json manifest_;  // {"request": ..., "blocks": {"0": record, ...}}
};

}  // namespace crepe::io
