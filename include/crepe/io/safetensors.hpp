#pragma once
// safetensors files: reading (memory-mapped, lazy per tensor, single file or sharded) and writing.
//
// Format: u64 little-endian header length N, then N bytes of JSON
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
// then the data section; offsets are relative to the start of the data section.
//
// Promises:
// - open() validates the header completely before any tensor is touched: length within the file,
//   valid JSON object, known dtype (F32, F16, BF16; anything else is an InputError naming it),
//   offsets inside the data section, no two tensors overlapping, shape x dtype size == byte size.
//   Every violation is an InputError naming the file (and the tensor).
// - Nothing is read until asked for: load() copies one tensor out of the mapping.
// - Writers write to "<path>.tmp" and rename only when every tensor has been written, so a file
//   at the final path is always complete. Headers are padded with spaces to a multiple of 8 bytes.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace crepe::io {

enum class DType { F32, F16, BF16 };

std::string dtype_to_string(DType dtype);     // "F32", "F16", "BF16"
size_t dtype_size(DType dtype);               // bytes per element
c10::ScalarType to_scalar_type(DType dtype);  // kFloat, kHalf, kBFloat16
DType from_scalar_type(c10::ScalarType type); // throws InputError for other types

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data section
  uint64_t end = 0;

  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// One memory-mapped .safetensors file.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Tensors in file order (ascending data offset).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // InputError if absent

  // A CPU tensor in the stored dtype and shape, copied out of the mapping (owned memory; in pinned
  // memory when asked, for asynchronous uploads to a GPU). Safe to call from several threads.
  at::Tensor load(const std::string& name, bool pinned = false) const;
  // The raw stored bytes of one tensor, valid while this object lives.
  const uint8_t* raw(const std::string& name) const;

  uint64_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  void map_file();     // open + mmap path_, sets map_ and size_
  void read_header();  // validates the header, fills tensors_, index_, metadata_
  static void release_pages(const uint8_t* begin, uint64_t nbytes);
  std::string path_;
  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;  // 8 + header length
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: either one "model.safetensors" or the shards listed in
// "model.safetensors.index.json" (its "weight_map": tensor name -> shard file). An index that names
// a missing shard, or a tensor absent from its shard, is an InputError naming the index file.
class TensorStore {
 public:
  static TensorStore open_dir(const std::string& dir);

  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // InputError naming the tensor if absent
  at::Tensor load(const std::string& name, bool pinned = false) const;  // stored dtype, CPU
  // All tensor names, sorted.
  std::vector<std::string> names() const;
  // Shard files in order (one entry for a single-file checkpoint), as file names relative to dir.
  const std::vector<std::string>& shard_files() const { return shard_names_; }
  const SafetensorsFile& shard(size_t i) const { return *shards_.at(i); }
  // Which shard (index into shard_files()) holds a tensor.
  size_t shard_of(const std::string& name) const;
  bool is_sharded() const { return sharded_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  bool sharded_ = false;
  std::vector<std::string> shard_names_;
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, size_t> where_;

  void open_single(const std::string& file_name);
  void open_index(const std::string& index_path);
};

// Writes one safetensors file whose layout (names, dtypes, shapes, order) is fixed up front, so that
// the header goes out first and tensors can then be streamed in any order, each exactly once.
// Tensors are converted to the planned dtype if needed and must match the planned shape.
class SafetensorsWriter {
 public:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
  };
  SafetensorsWriter(std::string path, std::vector<Entry> layout,
                    std::map<std::string, std::string> metadata = {});
  ~SafetensorsWriter();  // removes the temporary file if commit() was not reached
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void put(const std::string& name, const at::Tensor& tensor);
  // Copies a tensor's stored bytes unchanged (byte-identical passthrough).
  void put_raw(const std::string& name, const uint8_t* bytes, uint64_t nbytes);
  bool complete() const;
  // Flushes, checks that every planned tensor was written, renames "<path>.tmp" to path.
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Convenience: write a whole file at once (tensors in the given order).
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace crepe::io
