#include "crepe/io/partial_run.hpp"

#include <ATen/ATen.h>

#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/core/files.hpp"
#include "crepe/io/output_paths.hpp"

namespace crepe::io {
namespace {

namespace fs = std::filesystem;

// FNV-1a, 64 bit: a fingerprint, not a security boundary.
uint64_t fnv1a(uint64_t hash, const void* data, size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 0x100000001b3ULL;
  return hash;
}

// FNV-1a over 64-bit words (then the tail bytes): eight times the speed of the byte-wise hash,
// enough to notice a damaged block file.
uint64_t file_checksum(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  require(static_cast<bool>(in), path, "cannot read");
  uint64_t hash = 0xcbf29ce484222325ULL;
  std::vector<char> buffer(size_t{1} << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const size_t got = static_cast<size_t>(in.gcount());
    size_t i = 0;
    for (; i + 8 <= got; i += 8) {
      uint64_t word;
      std::memcpy(&word, buffer.data() + i, 8);
      hash = (hash ^ word) * 0x100000001b3ULL;
    }
    hash = fnv1a(hash, buffer.data() + i, got - i);
  }
  return hash;
}

std::string hex(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

std::string header_bytes(const fs::path& shard) {
  std::ifstream in(shard, std::ios::binary);
  uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), 8);
  std::string header(static_cast<size_t>(std::min<uint64_t>(length, uint64_t{1} << 30)), '\0');
  in.read(header.data(), static_cast<std::streamsize>(header.size()));
  return header;
}

}  // namespace

std::string checkpoint_fingerprint(const Checkpoint& checkpoint) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  const std::string config = read_small_file((fs::path(checkpoint.dir()) / "config.json").string());
  hash = fnv1a(hash, config.data(), config.size());
  for (const std::string& shard : checkpoint.tensors().shard_files()) {
    const fs::path path = fs::path(checkpoint.dir()) / shard;
    const std::string file = file_fingerprint(path.string());
    const std::string header = header_bytes(path);
    hash = fnv1a(hash, shard.data(), shard.size());
    hash = fnv1a(hash, file.data(), file.size());
    hash = fnv1a(hash, header.data(), header.size());
  }
  return hex(hash);
}

std::string file_fingerprint(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return "";
  // Readable, so that a refused resume can say which of the two changed: the modification time in
  // UTC, to the nanosecond the file system keeps.
  std::tm utc {};
  char when[32] = {0};
  if (::gmtime_r(&st.st_mtim.tv_sec, &utc) == nullptr || std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &utc) == 0) return "";
  char nanoseconds[16];
  std::snprintf(nanoseconds, sizeof nanoseconds, ".%09ld", static_cast<long>(st.st_mtim.tv_nsec));
  return "size " + std::to_string(st.st_size) + ", modified " + when + nanoseconds + " UTC";
}

namespace {

// The first place where `now` differs from `before`, as a dotted key ("calibration.data_file")
// with both values: objects are compared key by key, anything else as a whole.
std::string first_difference(const nlohmann::json& before, const nlohmann::json& now, const std::string& key) {
  if (before.is_object() && now.is_object()) {
    for (const auto& [k, v] : now.items()) {
      const nlohmann::json missing;
      const nlohmann::json& old = before.contains(k) ? before.at(k) : missing;
      if (old != v) return first_difference(old, v, key + "." + k);
    }
    for (const auto& [k, v] : before.items()) {
      if (!now.contains(k)) return first_difference(v, nlohmann::json(), key + "." + k);
    }
  }
  return "'" + key + "' differs from the interrupted run (it had " + (before.is_null() ? std::string("nothing") : before.dump()) +
         ", now " + (now.is_null() ? std::string("nothing") : now.dump()) + ")";
}

}  // namespace

void require_same_request(const nlohmann::json& recorded, const nlohmann::json& request, const std::string& where,
                          const std::string& restart, const std::map<std::string, std::string>& explain) {
  for (const auto& [key, value] : request.items()) {
    if (recorded.contains(key) && recorded[key] == value) continue;
    const auto reason = explain.find(key);
    const std::string why = reason != explain.end()
                                ? reason->second
                                : first_difference(recorded.contains(key) ? recorded[key] : nlohmann::json(), value, key);
    throw_input_error(where, "cannot resume: " + why + "; " + restart);
  }
}

PartialRun::PartialRun(const std::string& out_dir, nlohmann::json request, bool resume, bool force)
    : dir_(dir_for(out_dir)) {
  const fs::path manifest_path = fs::path(dir_) / "manifest.json";
  if (!resume) {
    require(!fs::exists(dir_) || force, dir_,
            "an interrupted run left its finished blocks here: add --resume to continue it, or --force to start over");
    std::error_code ec;
    fs::remove_all(dir_, ec);
    require(!ec, dir_, "cannot remove the earlier run's finished blocks: " + ec.message());
    // The directory appears with the first finished block (save_block): a run that fails before
    // that (bad input, or --out inside --model, refused next) leaves nothing behind.
    manifest_ = {{"request", std::move(request)}, {"blocks", nlohmann::json::object()}};
    return;
  }
  require(fs::exists(manifest_path), dir_, "nothing to resume (no manifest.json from an interrupted run)");
  try {
    manifest_ = nlohmann::json::parse(read_small_file(manifest_path.string()));
  } catch (const nlohmann::json::exception& e) {
    throw_input_error(manifest_path.string(), std::string("corrupt manifest: ") + e.what());
  }
  require(manifest_.is_object() && manifest_.contains("request") && manifest_["blocks"].is_object(), manifest_path.string(),
          "corrupt manifest (no request, or blocks not an object); run again with --force instead of --resume");
  require_same_request(manifest_["request"], request, dir_, "run again with --force instead of --resume",
                       {{"input", "the model's files changed since the interrupted run (config.json, or a shard's size, "
                                  "header or modification time)"}});
  // Every saved block is checked before any work: a damaged one would be restored as it is.
  for (const auto& [block, record] : manifest_["blocks"].items()) {
    require(!block.empty() && block.size() < 10 && block.find_first_not_of("0123456789") == std::string::npos,
            manifest_path.string(), "corrupt manifest: '" + block + "' is not a block number");
    const std::string path = block_path(std::stoll(block));
    std::error_code ec;
    require(fs::is_regular_file(path, ec), path, "is missing; run again with --force instead of --resume");
    require(record.is_object() && record.contains("checksum") && record["checksum"] == hex(file_checksum(path)), path,
            "differs from the file the interrupted run saved (damaged?); run again with --force instead of --resume");
  }
}

std::string PartialRun::dir_for(const std::string& out_dir) { return normalised_path(out_dir) + ".partial"; }

bool PartialRun::has_block(int64_t block) const { return manifest_["blocks"].contains(std::to_string(block)); }

int64_t PartialRun::completed_blocks() const { return static_cast<int64_t>(manifest_["blocks"].size()); }

std::string PartialRun::block_path(int64_t block) const {
  char name[32];
  std::snprintf(name, sizeof name, "block-%05lld.safetensors", static_cast<long long>(block));
  return (fs::path(dir_) / name).string();
}

std::vector<std::pair<std::string, at::Tensor>> PartialRun::load_block(int64_t block) const {
  const auto file = SafetensorsFile::open(block_path(block));
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const TensorInfo& info : file->tensors()) tensors.emplace_back(info.name, file->load(info.name));
  return tensors;
}

const nlohmann::json& PartialRun::block_record(int64_t block) const {
  return manifest_["blocks"].at(std::to_string(block));
}

void PartialRun::save_block(int64_t block, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                            nlohmann::json record) {
  fs::create_directories(dir_);
  write_safetensors(block_path(block), tensors);
  record["checksum"] = hex(file_checksum(block_path(block)));
  manifest_["blocks"][std::to_string(block)] = std::move(record);
  write_manifest();
}

void PartialRun::write_manifest() const {
  // Compact: with --permute it holds every layer's channel order.
  write_file_atomically((fs::path(dir_) / "manifest.json").string(), manifest_.dump() + "\n");
}

void PartialRun::remove() {
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

}  // namespace crepe::io
