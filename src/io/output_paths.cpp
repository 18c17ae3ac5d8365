#include "crepe/io/output_paths.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <system_error>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/io/checkpoint_writer.hpp"

namespace crepe::io {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTemporaryInfix = ".crepe-tmp-";
constexpr const char* kSetAsideInfix = ".crepe-old-";
constexpr size_t kUniqueSuffix = 6;  // mkdtemp's and mkostemp's XXXXXX

fs::path resolved(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
  if (ec) p = fs::absolute(path).lexically_normal();
  if (!p.has_filename() && p.has_parent_path() && p != p.root_path()) p = p.parent_path();
  return p;
}

// The nearest ancestor of `path` that exists, or an empty path.
fs::path existing_ancestor(const fs::path& path) {
  std::error_code ec;
  for (fs::path p = path.parent_path(); !p.empty(); p = p.parent_path()) {
    if (fs::exists(p, ec)) return p;
    if (p == p.root_path()) break;
  }
  return {};
}

// A file of the input folder `dir` that is, through links, a file inside `out` (a Hugging Face
// snapshot is all links; so is a folder of links to an earlier output), or nothing. A folder holding
// more than kMaxEntries files is not a checkpoint: only that many are looked at.
std::optional<fs::path> file_leading_into(const std::string& dir, const std::string& out) {
  constexpr int kMaxEntries = 100000;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  int seen = 0;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end && seen < kMaxEntries; it.increment(ec), ++seen) {
    if (fs::is_symlink(it->symlink_status(ec)) && path_is_inside(it->path().string(), out)) return it->path();
  }
  return std::nullopt;
}

// The names crepe writes beside an output are longer than its own (a directory's ".OUT.crepe-tmp-
// XXXXXX", a file's "OUT.crepe-tmp-XXXXXX"): refused up front, rather than failing with an
// obscure error once the work is done, when they would not fit the file system's name length.
void check_name_room(const std::string& shown, const fs::path& out, size_t added) {
  const std::string name = out.filename().string();
  long name_max = 255;
  const fs::path folder = existing_ancestor(out);
  if (!folder.empty()) {
    const long asked = ::pathconf(folder.c_str(), _PC_NAME_MAX);
    if (asked > 0) name_max = asked;
  }
  require(name.size() + added <= static_cast<size_t>(name_max), shown,
          "its name is " + std::to_string(name.size()) + " bytes long; crepe writes beside it under names " +
              std::to_string(added) + " bytes longer, and this file system allows " + std::to_string(name_max) +
              ": choose a shorter name");
}

void check_not_an_input(const std::string& out, const std::vector<std::string>& inputs, bool may_contain) {
  for (const std::string& input : inputs) {
    if (input.empty()) continue;
    require(!path_is_inside(out, input), out, "is, or lies inside, the input " + input + ": inputs are never written");
    if (may_contain) continue;
    require(!path_is_inside(input, out), out,
            "contains the input " + input + ": replacing it would delete that input; choose another output");
    if (const std::optional<fs::path> link = file_leading_into(input, out)) {
      throw_input_error(out, "holds what " + link->string() + " (of the input " + input +
                                 ") links to: replacing it would delete that input; choose another output");
    }
  }
}

}  // namespace

std::string normalised_path(const std::string& path) { return path.empty() ? path : resolved(path).string(); }

bool path_is_inside(const std::string& candidate, const std::string& dir) {
  const fs::path c = resolved(candidate), d = resolved(dir);
  auto ci = c.begin();
  for (auto di = d.begin(); di != d.end(); ++di, ++ci) {
    if (ci == c.end() || *ci != *di) return false;
  }
  return true;
}

void check_output_directory(const std::string& out_dir, const std::vector<std::string>& inputs, bool force) {
  require(!out_dir.empty(), "--out", "must name an output directory");
  // A symlink that leads nowhere (dangling, or a loop) would only fail at the final rename, after
  // all the work.
  std::error_code link_ec, target_ec;
  const bool is_link = fs::is_symlink(fs::symlink_status(out_dir, link_ec));
  require(!is_link || fs::exists(fs::status(out_dir, target_ec)), out_dir,
          "is a symbolic link that leads nowhere (dangling, or a loop); remove it or choose another output");
  const fs::path out = resolved(out_dir);
  require(out.has_parent_path() && out != out.root_path(), out_dir, "cannot be the root directory");
  check_name_room(out_dir, out, 1 + std::strlen(kTemporaryInfix) + kUniqueSuffix);  // the set-aside's is as long
  check_not_an_input(out_dir, inputs, /*may_contain=*/false);
  require(!path_is_inside(fs::current_path().string(), out.string()), out_dir,
          "is or contains the current directory, which crepe would replace as a whole; choose another output");
  std::error_code ec;
  const bool exists = fs::exists(out, ec);
  require(!exists || force, out_dir, "already exists (use --force to replace it)");
  require(!exists || fs::is_directory(out, ec), out_dir, "exists and is not a directory");
  // --force replaces an earlier output, never a folder of the user's own that it happens to name.
  const bool empty = exists && fs::is_empty(out, ec);
  require(!exists || empty || fs::exists(out / kReportFileName, ec), out_dir,
          "exists and is not an earlier crepe output (it has no crepe_report.json), so --force will not delete it; "
          "remove it yourself or choose another output");
  const fs::path ancestor = existing_ancestor(out);
  require(!ancestor.empty() && fs::is_directory(ancestor, ec), out_dir,
          ancestor.string() + " is not a directory, so the output cannot be made there");
}

void check_partial_directory(const std::string& partial_dir, const std::vector<std::string>& inputs) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(partial_dir, ec))) return;
  check_not_an_input(partial_dir, inputs, /*may_contain=*/false);
  require(fs::is_directory(fs::symlink_status(partial_dir, ec)) && fs::is_regular_file(fs::path(partial_dir) / "manifest.json", ec),
          partial_dir,
          "exists and is not an interrupted crepe run (no manifest.json), so crepe will neither resume nor delete it; "
          "remove it yourself or choose another output");
}

void check_output_file(const std::string& path, const std::vector<std::string>& inputs,
                       const std::function<bool(const std::string&)>& replaceable, const std::string& kind) {
  require(!path.empty(), "--out", "must name an output file");
  const fs::path out = resolved(path);
  check_name_room(path, out, std::strlen(kTemporaryInfix) + kUniqueSuffix);
  check_not_an_input(path, inputs, /*may_contain=*/true);
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(path, ec);
  require(!fs::is_directory(status), path, "is a directory; name the file to write");
  if (fs::exists(status)) {
    // Written by rename: a device, pipe or symbolic link would be replaced by a plain file.
    require(fs::is_regular_file(status), path, "exists and is not a regular file (a device, pipe or link); name a file");
    require(replaceable(path), path, "exists and is not " + kind + ", so crepe will not overwrite it; remove it or choose another name");
  }
  const fs::path folder = out.parent_path();
  require(fs::is_directory(folder, ec), path, "its folder " + folder.string() + " does not exist or is not a directory");
}

namespace {

// An exclusive flock on one folder, held while a temporary is created and claimed there, or while
// the folder's temporaries are judged and removed. Best effort, and never a hang: a folder that
// cannot be opened, or that stays locked for 10 s (another process flocks it for its own ends), is
// used unlocked; all that is lost then is the guard against a cleaner racing a writer.
class FolderLock {
 public:
  explicit FolderLock(const fs::path& folder) : fd_(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    if (fd_ < 0) return;
    for (int attempt = 0; attempt < 1000; ++attempt) {
      if (::flock(fd_, LOCK_EX | LOCK_NB) == 0 || (errno != EWOULDBLOCK && errno != EINTR)) return;
      ::usleep(10000);
    }
  }
  ~FolderLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_;
};

// `fd` claimed for its writer: an exclusive flock that no one else holds, as it was just created.
void claim(int fd) { ::flock(fd, LOCK_EX | LOCK_NB); }

}  // namespace

TemporaryClaim& TemporaryClaim::operator=(TemporaryClaim&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

TemporaryClaim::~TemporaryClaim() {
  if (fd_ >= 0) ::close(fd_);
}

std::string create_temporary_directory(const std::string& out_dir, TemporaryClaim& held) {
  const fs::path out = normalised_path(out_dir);
  std::string path = (out.parent_path() / ("." + out.filename().string() + kTemporaryInfix + "XXXXXX")).string();
  {
    FolderLock folder(out.parent_path());
    require(::mkdtemp(path.data()) != nullptr, out.parent_path().string(),
            std::string("cannot create a temporary directory here: ") + std::strerror(errno));
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) claim(fd);
    held = TemporaryClaim(fd);
  }
  // mkdtemp makes it private (0700); the finished output should look like any other directory.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  std::error_code ec;
  fs::permissions(path, static_cast<fs::perms>(0777 & ~mask), ec);
  return path;
}

namespace {

// Whether `name` is `prefix` followed by the six letters and digits mkdtemp/mkstemp put in place of
// XXXXXX: nothing else is ever taken for one of crepe's temporaries.
bool is_made_from_template(const std::string& name, const std::string& prefix) {
  if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0) return false;
  return std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), name.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
}

// An exclusive flock on `path` that nobody else holds (taken and kept open), or -1.
int take_unclaimed(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
  ::close(fd);
  return -1;
}

}  // namespace

int remove_abandoned_temporaries(const std::string& output, OutputForm form) {
  const fs::path out = normalised_path(output);
  const std::string name = out.filename().string();
  const bool directory = form == OutputForm::Directory;
  const std::string temporary_prefix = (directory ? "." : "") + name + kTemporaryInfix;
  const std::string set_aside_prefix = "." + name + kSetAsideInfix;
  struct Found {
    fs::path path;
    int fd;
    bool set_aside;  // an earlier output moved aside to be replaced, not a temporary
  };
  std::vector<Found> found;
  {
    // Judged under the folder's lock (a writer claims a new temporary under it), removed after it,
    // while this process's own claims keep any other cleaner away.
    FolderLock folder(out.parent_path());
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(out.parent_path(), ec)) {
      const std::string entry_name = entry.path().filename().string();
      const fs::file_status status = entry.symlink_status(ec);
      const bool set_aside = directory && is_made_from_template(entry_name, set_aside_prefix);
      if (!set_aside && !is_made_from_template(entry_name, temporary_prefix)) continue;
      if (directory ? !fs::is_directory(status) : !fs::is_regular_file(status)) continue;
      const int fd = take_unclaimed(entry.path());
      if (fd >= 0) found.push_back({entry.path(), fd, set_aside});
    }
  }
  int removed = 0;
  std::error_code ec;
  const bool output_exists = fs::exists(out, ec);
  for (const Found& f : found) {
    if (f.set_aside && !output_exists) {
      // Killed between moving the earlier output aside and moving the new one in: that is all there is of it.
      spdlog::warn("{} holds the earlier {}, set aside by a crepe run killed while replacing it; move it back to keep it",
                   f.path.string(), out.string());
    } else {
      std::error_code removal;
      fs::remove_all(f.path, removal);
      if (!removal) {
        ++removed;
        spdlog::warn("removed {}, left behind by a crepe run that was killed", f.path.string());
      }
    }
    ::close(f.fd);
  }
  return removed;
}

void move_into_place(const std::string& temp_dir, const std::string& out_dir) {
  const fs::path out = normalised_path(out_dir);
  std::error_code ec;
  if (!fs::exists(out, ec)) {
    fs::rename(temp_dir, out, ec);
    require(!ec, out_dir, "cannot move the finished output into place: " + ec.message());
    return;
  }
  // --force: the earlier output is moved aside first (claimed, so no cleaner takes it meanwhile)
  // and deleted only once the new one is in place, so that no failure loses both.
  const int claim_fd = ::open(out.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (claim_fd >= 0) claim(claim_fd);
  const TemporaryClaim earlier_claim(claim_fd);
  std::string aside = (out.parent_path() / ("." + out.filename().string() + kSetAsideInfix + "XXXXXX")).string();
  require(::mkdtemp(aside.data()) != nullptr, out.parent_path().string(),
          std::string("cannot create a directory here: ") + std::strerror(errno));
  fs::remove(aside, ec);
  fs::rename(out, aside, ec);
  require(!ec, out_dir, "cannot replace the existing output: " + ec.message());
  fs::rename(temp_dir, out, ec);
  if (ec) {
    std::error_code restored;
    fs::rename(aside, out, restored);  // the earlier output stays where it was
    throw_input_error(out_dir, "cannot move the finished output into place: " + ec.message());
  }
  fs::remove_all(aside, ec);
}

void write_file_atomically(const std::string& path, const std::string& contents) {
  // Named as the cleaner names it (resolved: "x/" and "x/." are x), unique: two runs writing one
  // path do not collide.
  const fs::path target = resolved(path);
  std::string temp = target.string() + kTemporaryInfix + "XXXXXX";
  int fd = -1;
  {
    FolderLock folder(target.parent_path());
    fd = ::mkostemp(temp.data(), O_CLOEXEC);
    require(fd >= 0, path, std::string("cannot write here: ") + std::strerror(errno));
    claim(fd);
  }
  auto fail = [&](const std::string& why) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw_input_error(path, why);
  };
  for (size_t done = 0; done < contents.size();) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(std::string("cannot write all of it: ") + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  // On disk before the rename, so that a crash leaves the old file or the whole new one.
  if (::fsync(fd) != 0) fail(std::string("cannot write all of it: ") + std::strerror(errno));
  // mkstemp makes the file private (0600); an output should look like any other file.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  // Renamed while still claimed: once closed, the temporary would look abandoned to a cleaner.
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) fail("cannot put the written file in place: " + ec.message());
  ::close(fd);
}

}  // namespace crepe::io
