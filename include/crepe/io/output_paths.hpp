#pragma once
// Where crepe may write, and how. Inputs (a model directory, data files, a config file) are never
// written, moved or deleted: an output that is an input, lies inside one, or contains one is refused
// up front, before any long work, with an InputError naming the output and the input.
//
// Paths are compared after resolving symlinks and "..", so `--out .` from inside a model directory
// or a trailing slash mean what they say.
#include <functional>
#include <string>
#include <vector>

namespace crepe::io {

// The absolute, normalised form of a user-given path, without a trailing separator ("out/" -> out);
// "" (an option not given) stays "".
std::string normalised_path(const std::string& path);

// Whether `candidate` is `dir` or lies below it (after resolving symlinks where they exist).
bool path_is_inside(const std::string& candidate, const std::string& dir);

// An output directory that a finished run replaces as a whole. InputError naming `out_dir` when it
// is empty, equals or lies inside one of `inputs`, contains one of them or the current directory,
// exists and `force` is not set, exists and is neither empty nor an earlier crepe output (one with
// a crepe_report.json: --force never deletes a folder of the user's own), exists and is not a
// directory, or its parent cannot be a directory (a file is in the way).
void check_output_directory(const std::string& out_dir, const std::vector<std::string>& inputs, bool force);

// Where a prune keeps its finished blocks (OUT.partial). When it exists it must be an interrupted
// crepe run (a folder with manifest.json) that holds none of `inputs`: resuming reads it, --force
// deletes it. InputError naming it otherwise.
void check_partial_directory(const std::string& partial_dir, const std::vector<std::string>& inputs);

// An output file. InputError naming `path` when it is empty or a directory, equals or lies inside one
// of `inputs`, its folder does not exist or is not a directory, or it exists and is not a regular
// file (a device, pipe or symlink, which the rename would replace) or not `kind` as `replaceable`
// recognises it (an earlier output of the same sort: never a file of the user's own).
void check_output_file(const std::string& path, const std::vector<std::string>& inputs,
                       const std::function<bool(const std::string&)>& replaceable, const std::string& kind);

// Writes `contents` to a temporary file beside `path`, then renames it over `path`: a reader sees
// the old file or the whole new one. InputError naming `path` when the bytes cannot all be written
// (disk full, not writable); the temporary file is removed then.
void write_file_atomically(const std::string& path, const std::string& contents);

// ---- Temporaries ------------------------------------------------------------------------------------
// An output is written under a temporary name beside it (".NAME.crepe-tmp-XXXXXX" for a directory,
// "NAME.crepe-tmp-XXXXXX" for a file) and renamed into place when complete. Its writer holds an
// exclusive flock on it from the moment it exists (claimed under a lock on the folder, so a cleaner
// never sees it unclaimed). A process killed outright cannot remove its temporary, but the kernel
// drops its lock: the next run writing the same output knows the temporary is abandoned. (Where the
// file system refuses flock, nothing is ever taken for abandoned.)

// Holds a temporary's claim until destroyed (move-only).
class TemporaryClaim {
 public:
  TemporaryClaim() = default;
  explicit TemporaryClaim(int fd) : fd_(fd) {}
  TemporaryClaim(TemporaryClaim&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  TemporaryClaim& operator=(TemporaryClaim&& other) noexcept;
  TemporaryClaim(const TemporaryClaim&) = delete;
  TemporaryClaim& operator=(const TemporaryClaim&) = delete;
  ~TemporaryClaim();

 private:
  int fd_ = -1;
};

// A new, empty, claimed temporary directory for the output directory `out_dir` (whose parent must
// exist), with the permissions mkdir would give. InputError naming the folder when it cannot be made.
std::string create_temporary_directory(const std::string& out_dir, TemporaryClaim& claim);

// Removes the temporaries of `output` that no live writer claims: those a killed run left behind,
// each logged. Only names crepe makes match (the prefix, then six letters or digits), and only in
// the form the output has. For a directory, an earlier output that a killed --force run had moved
// aside (".NAME.crepe-old-XXXXXX") is removed too when NAME exists, and kept with a warning when it
// does not (it is then all there is of the output). Returns how many were removed. Where flock is
// local to each machine (some NFS and Lustre mounts), a run on another machine is not seen.
enum class OutputForm { Directory, File };
int remove_abandoned_temporaries(const std::string& output, OutputForm form);

// Renames the finished temporary directory `temp_dir` to `out_dir`. An existing `out_dir` (--force)
// is moved aside first and deleted once the new one is in place; a failure puts it back. InputError
// naming `out_dir` when a rename fails.
void move_into_place(const std::string& temp_dir, const std::string& out_dir);

}  // namespace crepe::io
