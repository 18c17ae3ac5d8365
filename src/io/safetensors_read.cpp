// Reading safetensors: one memory-mapped file (SafetensorsFile) and a checkpoint directory that is
// either one file or a sharded set with an index (TensorStore).
//
// The header is untrusted input: every field is type-checked and every offset bounds-checked in
// read_header() before any tensor byte is touched, so load() and raw() can index the mapping
// without further checks.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ATen/ops/empty.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "crepe/core/error.hpp"
#include "crepe/io/safetensors.hpp"

// Tensor bytes are copied into at::Tensors as stored; safetensors data is little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "crepe's safetensors I/O assumes a little-endian host");

namespace crepe::io {
namespace {

using nlohmann::json;

constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kSingleFileName = "model.safetensors";
constexpr const char* kIndexFileName = "model.safetensors.index.json";

// Names (and parser messages quoting them) come from untrusted bytes: keep error messages
// single-line and of bounded length.
std::string printable(const std::string& text) {
  constexpr size_t kMaxShown = 200;
  std::string shown = text.substr(0, kMaxShown);
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (text.size() > kMaxShown) shown += "...";
  return shown;
}

std::string in_quotes(const std::string& text) { return "'" + printable(text) + "'"; }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

[[noreturn]] void fail_tensor(const std::string& path, const std::string& name, const std::string& what) {
  throw_input_error(path, "tensor " + in_quotes(name) + ": " + what);
}

std::optional<DType> parse_dtype_name(const std::string& name) {
  if (name == "F32") return DType::F32;
  if (name == "F16") return DType::F16;
  if (name == "BF16") return DType::BF16;
  return std::nullopt;
}

// The parsed header, plus the position of each top-level key in the text. nlohmann keeps the last
// of duplicate keys silently, so duplicates are caught here, while parsing.
struct ParsedHeader {
  json root;
  std::map<std::string, size_t> position;
};

ParsedHeader parse_header_json(const std::string& path, const char* begin, const char* end) {
  ParsedHeader header;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!header.position.emplace(key, header.position.size()).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  try {
    header.root = json::parse(begin, end, on_event);
  } catch (const json::exception& e) {
    throw_input_error(path, "header is not valid JSON (" + printable(e.what()) + ")");
  }
  require(header.root.is_object(), path,
          std::string("header must be a JSON object (found ") + header.root.type_name() + ")");
  require(duplicate.empty(), path, "header names " + in_quotes(duplicate) + " twice");
  return header;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& value) {
  require(value.is_object(), path,
          std::string(kMetadataKey) + " must be an object of strings (found " + value.type_name() + ")");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    require(item.is_string(), path,
            std::string(kMetadataKey) + " value for " + in_quotes(key) + " must be a string (found " +
                item.type_name() + ")");
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

const json& field(const std::string& path, const std::string& name, const json& entry, const char* key) {
  auto it = entry.find(key);
  if (it == entry.end()) fail_tensor(path, name, std::string("entry has no '") + key + "'");
  return *it;
}

DType parse_entry_dtype(const std::string& path, const std::string& name, const json& value) {
  if (!value.is_string()) fail_tensor(path, name, "'dtype' must be a string");
  const std::string text = value.get<std::string>();
  std::optional<DType> dtype = parse_dtype_name(text);
  if (!dtype)
    throw_input_error(path,
                      "tensor " + in_quotes(name) + " has dtype " + printable(text) + "; crepe reads F32, F16, BF16");
  return *dtype;
}

std::vector<int64_t> parse_entry_shape(const std::string& path, const std::string& name, const json& value) {
  if (!value.is_array()) fail_tensor(path, name, "'shape' must be an array of integers");
  std::vector<int64_t> shape;
  for (const json& dim : value) {
    // nlohmann stores non-negative integers as unsigned and negative ones as signed.
    if (dim.is_number_unsigned()) {
      const uint64_t size = dim.get<uint64_t>();
      if (size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail_tensor(path, name, "dimension " + std::to_string(size) + " is too large");
      shape.push_back(static_cast<int64_t>(size));
    } else if (dim.is_number_integer()) {
      fail_tensor(path, name, "negative dimension " + std::to_string(dim.get<int64_t>()) + " in shape");
    } else {
      fail_tensor(path, name, "'shape' must be an array of integers");
    }
  }
  return shape;
}

void parse_entry_offsets(const std::string& path, const std::string& name, const json& value, TensorInfo& info) {
  const bool well_typed =
      value.is_array() && value.size() == 2 && value[0].is_number_unsigned() && value[1].is_number_unsigned();
  if (!well_typed) fail_tensor(path, name, "'data_offsets' must be two non-negative integers [begin, end]");
  info.begin = value[0].get<uint64_t>();
  info.end = value[1].get<uint64_t>();
}

// Bytes the shape needs, or nullopt when the count does not fit in 64 bits.
std::optional<uint64_t> shape_bytes(const std::vector<int64_t>& shape, DType dtype) {
  uint64_t bytes = dtype_size(dtype);
  for (int64_t dim : shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) return std::nullopt;
  }
  return bytes;
}

void check_entry_extent(const std::string& path, const TensorInfo& info, uint64_t data_size) {
  const std::string range = "[" + std::to_string(info.begin) + ", " + std::to_string(info.end) + "]";
  if (info.begin > info.end) fail_tensor(path, info.name, "data_offsets " + range + " begin after end");
  if (info.end > data_size)
    fail_tensor(
        path, info.name,
        "data_offsets " + range + " run past the end of the data section (" + std::to_string(data_size) + " bytes)");
  std::optional<uint64_t> needed = shape_bytes(info.shape, info.dtype);
  if (!needed) fail_tensor(path, info.name, "shape " + shape_string(info.shape) + " is too large");
  if (*needed != info.nbytes())
    fail_tensor(path, info.name,
                "shape " + shape_string(info.shape) + " of " + dtype_to_string(info.dtype) + " needs " +
                    std::to_string(*needed) + " bytes but data_offsets " + range + " hold " +
                    std::to_string(info.nbytes()));
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const json& entry, uint64_t data_size) {
  if (!entry.is_object())
    fail_tensor(path, name, std::string("entry must be an object (found ") + entry.type_name() + ")");
  // Fields other than these three are ignored: the format promises nothing about them.
  TensorInfo info;
  info.name = name;
  info.dtype = parse_entry_dtype(path, name, field(path, name, entry, "dtype"));
  info.shape = parse_entry_shape(path, name, field(path, name, entry, "shape"));
  parse_entry_offsets(path, name, field(path, name, entry, "data_offsets"), info);
  check_entry_extent(path, info, data_size);
  return info;
}

// File order. Zero-size tensors can share an offset with a neighbour; the header's order breaks the
// tie so that a passthrough copy reproduces the original layout.
void sort_by_offset(std::vector<TensorInfo>& tensors, const std::map<std::string, size_t>& position) {
  std::sort(tensors.begin(), tensors.end(), [&](const TensorInfo& a, const TensorInfo& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return position.at(a.name) < position.at(b.name);
  });
}

// Expects tensors sorted by offset. As the safetensors library validates a file: the tensors tile
// the data section exactly, each beginning where the one before ends and the last ending at the end
// of the file. Shared bytes would corrupt a tensor; gaps and bytes after the last tensor are what a
// damaged file has, and the library (so transformers and vLLM) refuses them.
void check_tiling(const std::string& path, const std::vector<TensorInfo>& tensors, uint64_t data_size) {
  const TensorInfo* previous = nullptr;
  uint64_t end = 0;
  for (const TensorInfo& info : tensors) {
    if (previous && info.begin < end)
      throw_input_error(path, "tensors " + in_quotes(previous->name) + " and " + in_quotes(info.name) +
                                  " overlap in the data section");
    if (info.begin > end) {
      throw_input_error(path, "tensor " + in_quotes(info.name) + " begins at byte " + std::to_string(info.begin) +
                                  " of the data section, leaving " + std::to_string(info.begin - end) +
                                  " bytes no tensor holds" +
                                  (previous ? " after " + in_quotes(previous->name) : std::string(" before it")) +
                                  " (safetensors data must be contiguous: a damaged file?)");
    }
    end = info.end;
    previous = &info;
  }
  require(end == data_size, path,
          std::to_string(data_size - end) + " bytes follow the last tensor's data (the header accounts for " +
              std::to_string(end) + " of the data section's " + std::to_string(data_size) +
              "): a damaged or concatenated file?");
}

// Closes a file descriptor on every exit path of SafetensorsFile::map_file.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

std::string system_error_text() { return std::strerror(errno); }

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  // Owned from the start, so a validation failure below still unmaps in the destructor.
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_file();
  file->read_header();
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

void SafetensorsFile::map_file() {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever, before fstat could
  // refuse it; it changes nothing for a regular file.
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_input_error(path_, "cannot open: " + system_error_text());
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_input_error(path_, "cannot stat: " + system_error_text());
  require(S_ISREG(st.st_mode), path_, "not a regular file");
  // Checked before mmap, which rejects a zero-length mapping.
  require(st.st_size >= 8, path_,
          "file is " + std::to_string(st.st_size) +
              " bytes, too short for a safetensors header (8-byte length, then JSON)");
  void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) throw_input_error(path_, "cannot memory-map: " + system_error_text());
  map_ = static_cast<const uint8_t*>(map);
  size_ = static_cast<uint64_t>(st.st_size);
}

void SafetensorsFile::read_header() {
  uint64_t header_length = 0;
  std::memcpy(&header_length, map_, sizeof header_length);  // little-endian, as the host
  require(header_length <= size_ - 8, path_,
          "header length " + std::to_string(header_length) + " runs past the end of the file (" +
              std::to_string(size_) + " bytes)");
  data_start_ = 8 + header_length;
  const char* text = reinterpret_cast<const char*>(map_ + 8);
  ParsedHeader header = parse_header_json(path_, text, text + header_length);

  const uint64_t data_size = size_ - data_start_;
  for (const auto& [key, value] : header.root.items()) {
    if (key == kMetadataKey) {
      metadata_ = parse_metadata(path_, value);
    } else {
      tensors_.push_back(parse_entry(path_, key, value, data_size));
    }
  }
  sort_by_offset(tensors_, header.position);
  check_tiling(path_, tensors_, data_size);
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) != 0; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw_input_error(path_, "no tensor " + in_quotes(name));
  return tensors_[it->second];
}

const uint8_t* SafetensorsFile::raw(const std::string& name) const { return map_ + data_start_ + info(name).begin; }

at::Tensor SafetensorsFile::load(const std::string& name, bool pinned) const {
  const TensorInfo& entry = info(name);
  at::Tensor tensor =
      at::empty(entry.shape, at::TensorOptions().dtype(to_scalar_type(entry.dtype)).pinned_memory(pinned));
  // A zero-size tensor may have no storage pointer at all; memcpy must not see it.
  if (entry.nbytes() > 0) std::memcpy(tensor.data_ptr(), map_ + data_start_ + entry.begin, entry.nbytes());
  release_pages(map_ + data_start_ + entry.begin, entry.nbytes());
  return tensor;
}

// The bytes were copied out; let the kernel drop the mapped pages so the process's resident set
// holds one block at a time however deep the model is (they are re-read from the file if touched
// again). Only pages entirely inside the range are released: neighbours may still be wanted.
void SafetensorsFile::release_pages(const uint8_t* begin, uint64_t nbytes) {
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page;
  const uintptr_t last = (reinterpret_cast<uintptr_t>(begin) + nbytes) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

// ---------------------------------------------------------------------------------------------
// TensorStore

namespace {

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_input_error(path, "cannot read: " + system_error_text());
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::exception& e) {
    throw_input_error(path, "not valid JSON (" + printable(e.what()) + ")");
  }
}

// tensor name -> shard file name, from the index's "weight_map". Other keys ("metadata") are ignored.
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  const json index = read_json_file(index_path);
  require(index.is_object(), index_path, std::string("must be a JSON object (found ") + index.type_name() + ")");
  auto it = index.find("weight_map");
  require(it != index.end() && it->is_object(), index_path, "has no \"weight_map\" object");
  std::map<std::string, std::string> weight_map;
  for (const auto& [tensor, shard] : it->items()) {
    require(
        shard.is_string(), index_path,
        "weight_map entry for " + in_quotes(tensor) + " must be a shard file name (found " + shard.type_name() + ")");
    weight_map[tensor] = shard.get<std::string>();
  }
  require(!weight_map.empty(), index_path, "weight_map is empty");
  return weight_map;
}

// What a directory without safetensors holds instead, for its error message: many older hub
// checkpoints ship PyTorch pickles only, which crepe does not read (unpickling runs arbitrary code
// in Python, and LibTorch's reader loads a whole shard into memory).
std::string other_formats_hint(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ignored;
  for (const char* pickle : {"pytorch_model.bin", "pytorch_model.bin.index.json", "consolidated.00.pth"}) {
    if (fs::exists(dir + "/" + pickle, ignored)) {
      return std::string(" (it holds ") + pickle +
             ": PyTorch pickles are not read; save the model with safetensors first, e.g. "
             "save_pretrained(out, safe_serialization=True) in transformers)";
    }
  }
  return "";
}

}  // namespace

TensorStore TensorStore::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ignored;
  require(fs::is_directory(dir, ignored), dir, "not a directory");
  TensorStore store;
  store.dir_ = dir;
  // model.safetensors first when both exist, as transformers' from_pretrained reads them (vLLM
  // would read the index's shards: the folder is ambiguous, and the user is told).
  const std::string index_path = dir + "/" + kIndexFileName;
  const bool has_single = fs::exists(dir + "/" + kSingleFileName, ignored);
  if (has_single) {
    if (fs::exists(index_path, ignored)) {
      spdlog::warn("{}: holds both {} and {}; reading {}, as transformers does, and ignoring the index (vLLM would "
                   "read the index's shards): remove whichever is stale", dir, kSingleFileName, kIndexFileName,
                   kSingleFileName);
    }
    store.open_single(kSingleFileName);
  } else if (fs::exists(index_path, ignored)) {
    store.open_index(index_path);
  } else {
    throw_input_error(dir, std::string("no ") + kSingleFileName + " or " + kIndexFileName + other_formats_hint(dir));
  }
  return store;
}

void TensorStore::open_single(const std::string& file_name) {
  shard_names_ = {file_name};
  shards_ = {SafetensorsFile::open(dir_ + "/" + file_name)};
  for (const TensorInfo& info : shards_[0]->tensors()) where_[info.name] = 0;
}

// The weight map is the checkpoint's table of contents: a tensor that a shard holds but the map
// does not list is not part of the checkpoint and is ignored (it stays visible through shard(i)).
void TensorStore::open_index(const std::string& index_path) {
  sharded_ = true;
  const std::map<std::string, std::string> weight_map = read_weight_map(index_path);
  std::set<std::string> unique_shards;
  for (const auto& [tensor, shard] : weight_map) unique_shards.insert(shard);
  shard_names_.assign(unique_shards.begin(), unique_shards.end());

  std::map<std::string, size_t> shard_number;
  for (const std::string& shard : shard_names_) {
    // Shards live in the model directory: a path elsewhere would make the checkpoint read (and its
    // pruned copy mirror) files that do not belong to it.
    require(!shard.empty() && shard.find('/') == std::string::npos && shard != "." && shard != "..", index_path,
            "names shard " + in_quotes(shard) + ", which is not a file name in the model directory");
    const std::string shard_path = dir_ + "/" + shard;
    std::error_code ignored;
    require(std::filesystem::exists(shard_path, ignored), index_path,
            "names shard " + in_quotes(shard) + ", which does not exist in " + dir_);
    shard_number[shard] = shards_.size();
    shards_.push_back(SafetensorsFile::open(shard_path));
  }
  for (const auto& [tensor, shard] : weight_map) {
    const size_t i = shard_number.at(shard);
    require(shards_[i]->contains(tensor), index_path,
            "maps tensor " + in_quotes(tensor) + " to shard " + in_quotes(shard) + ", which does not contain it");
    where_[tensor] = i;
  }
  // A second copy in another shard contradicts the map: a loader that reads whole shards could take
  // it, and a pruned checkpoint would carry it dense beside the pruned one.
  for (size_t i = 0; i < shards_.size(); ++i) {
    for (const TensorInfo& info : shards_[i]->tensors()) {
      const auto mapped = where_.find(info.name);
      if (mapped == where_.end() || mapped->second == i) continue;  // unlisted, or where the map says
      throw_input_error(index_path, "maps tensor " + in_quotes(info.name) + " to shard " +
                                        in_quotes(shard_names_[mapped->second]) + ", but shard " +
                                        in_quotes(shard_names_[i]) + " holds a copy too");
    }
  }
}

bool TensorStore::contains(const std::string& name) const { return where_.count(name) != 0; }

size_t TensorStore::shard_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw_input_error(dir_, "checkpoint has no tensor " + in_quotes(name));
  return it->second;
}

const TensorInfo& TensorStore::info(const std::string& name) const { return shards_[shard_of(name)]->info(name); }

at::Tensor TensorStore::load(const std::string& name, bool pinned) const {
  return shards_[shard_of(name)]->load(name, pinned);
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> names;
  names.reserve(where_.size());
  for (const auto& [name, shard] : where_) names.push_back(name);
  return names;
}

}  // namespace crepe::io
