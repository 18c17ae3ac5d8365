// Writing safetensors. The layout is planned up front so the header (which holds every offset) can
// be written first and tensors streamed in afterwards with pwrite, in any order: a pruned model is
// produced one layer at a time and never needs to be held in memory whole.
//
// The header is formatted as Hugging Face's writer formats it: compact JSON, "__metadata__" first
// (only when non-empty), each entry's keys in the order dtype, shape, data_offsets, then spaces up to
// a multiple of 8 bytes. Entries and data follow the given layout order (HF's writer chooses its own:
// by dtype alignment, then name), so copying a file with its tensors() as the layout reproduces it
// byte for byte. Metadata keys come out sorted; a source whose metadata has several keys in another
// order would differ in that one place.
//
// Misuse by the caller (unknown name, a tensor written twice, wrong shape or size, committing
// early) is a std::logic_error; failures of the file system are InputErrors naming the output path.
#include <fcntl.h>
#include <unistd.h>

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "crepe/core/error.hpp"
#include "crepe/io/safetensors.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "crepe's safetensors I/O assumes a little-endian host");

namespace crepe::io {

struct SafetensorsWriter::Impl {
  struct Slot {
    Entry entry;
    uint64_t begin = 0;  // relative to the data section
    uint64_t end = 0;
    bool written = false;
  };

  std::string path;
  std::string tmp_path;
  std::vector<Slot> slots;  // layout order
  std::map<std::string, size_t> slot_of;
  uint64_t data_start = 0;  // 8 + padded header length
  int fd = -1;
  bool committed = false;

  // Cleanup lives here rather than in ~SafetensorsWriter so that it also runs when the writer's
  // constructor throws after creating the temporary file.
  ~Impl() {
    if (fd >= 0) ::close(fd);
    if (!tmp_path.empty() && !committed) ::unlink(tmp_path.c_str());
  }

  // "<path>: <action> <path>.tmp: <reason>". Call right after the failing system call.
  [[noreturn]] void fail_io(const char* action) const {
    const std::string reason = std::strerror(errno);  // first: building strings could clobber errno
    throw_input_error(path, std::string(action) + " " + tmp_path + ": " + reason);
  }

  void plan(std::vector<Entry> layout);
  std::string header(const std::map<std::string, std::string>& metadata) const;
  void create_tmp();
  void write_at(uint64_t offset, const uint8_t* bytes, uint64_t count);
  Slot& slot_to_fill(const std::string& name);
  void fill(Slot& slot, const uint8_t* bytes, uint64_t count);
};

namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

uint64_t entry_bytes(const SafetensorsWriter::Entry& entry) {
  uint64_t bytes = dtype_size(entry.dtype);
  for (int64_t dim : entry.shape) {
    if (dim < 0) throw std::logic_error("SafetensorsWriter: tensor '" + entry.name + "' has a negative dimension");
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes))
      throw std::logic_error("SafetensorsWriter: tensor '" + entry.name + "' is too large");
  }
  return bytes;
}

// Makes the directory entry of a renamed file durable. Best effort: some file systems refuse to
// fsync a directory, and the data itself is already on disk by then.
void sync_parent_dir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

// Data offsets are contiguous in layout order.
void SafetensorsWriter::Impl::plan(std::vector<Entry> layout) {
  uint64_t offset = 0;
  for (Entry& entry : layout) {
    if (entry.name == "__metadata__") throw std::logic_error("SafetensorsWriter: '__metadata__' is not a tensor name");
    if (!slot_of.emplace(entry.name, slots.size()).second)
      throw std::logic_error("SafetensorsWriter: tensor '" + entry.name + "' planned twice");
    Slot slot;
    slot.begin = offset;
    if (__builtin_add_overflow(offset, entry_bytes(entry), &slot.end))
      throw std::logic_error("SafetensorsWriter: layout too large");
    slot.entry = std::move(entry);
    offset = slot.end;
    slots.push_back(std::move(slot));
  }
}

// The 8-byte length prefix, then the JSON padded with spaces so that the data section starts at a
// multiple of 8 (which lets readers map tensors with their natural alignment).
std::string SafetensorsWriter::Impl::header(const std::map<std::string, std::string>& metadata) const {
  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  if (!metadata.empty()) root["__metadata__"] = metadata;
  for (const Slot& slot : slots) {
    nlohmann::ordered_json entry;
    entry["dtype"] = dtype_to_string(slot.entry.dtype);
    entry["shape"] = slot.entry.shape;
    entry["data_offsets"] = {slot.begin, slot.end};
    root[slot.entry.name] = std::move(entry);
  }
  std::string text;
  try {
    text = root.dump();
  } catch (const nlohmann::ordered_json::exception& e) {  // a name or metadata string that is not UTF-8
    throw std::logic_error(std::string("SafetensorsWriter(") + path + "): " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t length = text.size();
  std::string prefix(8, '\0');
  std::memcpy(prefix.data(), &length, 8);  // little-endian, as the host
  return prefix + text;
}

void SafetensorsWriter::Impl::create_tmp() {
  fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const std::string reason = std::strerror(errno);
    const std::string attempted = tmp_path;
    tmp_path.clear();  // nothing was created: nothing for ~Impl to remove
    throw_input_error(path, "cannot create " + attempted + ": " + reason);
  }
}

// pwrite may write less than asked (signals, file size limits); anything but progress is an error,
// which is how a full disk shows up.
void SafetensorsWriter::Impl::write_at(uint64_t offset, const uint8_t* bytes, uint64_t count) {
  while (count > 0) {
    const ssize_t done = ::pwrite(fd, bytes, count, static_cast<off_t>(offset));
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) {
      if (done == 0) errno = ENOSPC;
      fail_io("cannot write");
    }
    bytes += done;
    offset += static_cast<uint64_t>(done);
    count -= static_cast<uint64_t>(done);
  }
}

SafetensorsWriter::Impl::Slot& SafetensorsWriter::Impl::slot_to_fill(const std::string& name) {
  if (committed) throw std::logic_error("SafetensorsWriter(" + path + "): put after commit");
  auto it = slot_of.find(name);
  if (it == slot_of.end())
    throw std::logic_error("SafetensorsWriter(" + path + "): tensor '" + name + "' is not in the layout");
  Slot& slot = slots[it->second];
  if (slot.written) throw std::logic_error("SafetensorsWriter(" + path + "): tensor '" + name + "' written twice");
  return slot;
}

void SafetensorsWriter::Impl::fill(Slot& slot, const uint8_t* bytes, uint64_t count) {
  if (count != slot.end - slot.begin)
    throw std::logic_error("SafetensorsWriter(" + path + "): tensor '" + slot.entry.name + "' has " +
                           std::to_string(count) + " bytes, the layout plans " + std::to_string(slot.end - slot.begin));
  write_at(data_start + slot.begin, bytes, count);
  slot.written = true;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<Entry> layout,
                                     std::map<std::string, std::string> metadata)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = std::move(path);
  impl_->plan(std::move(layout));
  const std::string header = impl_->header(metadata);
  impl_->data_start = header.size();
  impl_->tmp_path = impl_->path + ".tmp";
  impl_->create_tmp();
  impl_->write_at(0, reinterpret_cast<const uint8_t*>(header.data()), header.size());
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::put(const std::string& name, const at::Tensor& tensor) {
  Impl::Slot& slot = impl_->slot_to_fill(name);
  if (!tensor.defined()) throw std::logic_error("SafetensorsWriter: tensor '" + name + "' is undefined");
  if (tensor.sizes() != c10::IntArrayRef(slot.entry.shape))
    throw std::logic_error("SafetensorsWriter(" + impl_->path + "): tensor '" + name + "' has shape " +
                           shape_string(tensor.sizes().vec()) + ", the layout plans " + shape_string(slot.entry.shape));
  const at::Tensor bytes = tensor.to(c10::Device(c10::kCPU), to_scalar_type(slot.entry.dtype)).contiguous();
  impl_->fill(slot, static_cast<const uint8_t*>(bytes.data_ptr()), bytes.nbytes());
}

void SafetensorsWriter::put_raw(const std::string& name, const uint8_t* bytes, uint64_t nbytes) {
  impl_->fill(impl_->slot_to_fill(name), bytes, nbytes);
}

bool SafetensorsWriter::complete() const {
  return std::all_of(impl_->slots.begin(), impl_->slots.end(), [](const Impl::Slot& slot) { return slot.written; });
}

void SafetensorsWriter::commit() {
  Impl& impl = *impl_;
  if (impl.committed) throw std::logic_error("SafetensorsWriter(" + impl.path + "): committed twice");
  for (const Impl::Slot& slot : impl.slots) {
    if (!slot.written)
      throw std::logic_error("SafetensorsWriter(" + impl.path + "): commit before tensor '" + slot.entry.name +
                             "' was written");
  }
  // Errors of delayed writeback surface at fsync or close, not at pwrite.
  if (::fsync(impl.fd) != 0) impl.fail_io("cannot flush");
  const int fd = impl.fd;
  impl.fd = -1;
  if (::close(fd) != 0) impl.fail_io("cannot close");
  if (::rename(impl.tmp_path.c_str(), impl.path.c_str()) != 0) impl.fail_io("cannot rename into place");
  impl.committed = true;
  sync_parent_dir(impl.path);
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsWriter::Entry> layout;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) throw std::logic_error("write_safetensors: tensor '" + name + "' is undefined");
    layout.push_back({name, from_scalar_type(tensor.scalar_type()), tensor.sizes().vec()});
  }
  SafetensorsWriter writer(path, std::move(layout), metadata);
  for (const auto& [name, tensor] : tensors) writer.put(name, tensor);
  writer.commit();
}

}  // namespace crepe::io
