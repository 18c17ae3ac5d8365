#pragma once
// Where crepe may write, and how. Inputs (a model directory, data files, a config file) are never
// written, moved or deleted: an output that is an input, lies inside one, or contains one is refused
// up front, before any long work, with an InputError naming the output and the input.
//
// Paths are compared after resolving symlinks and "..", so `--out .` from inside a model directory
// or a trailing slash mean what they say.
#include <string>
#include <vector>

namespace crepe::io {

// The absolute, normalised form of a user-given path, without a trailing separator ("out/" -> out).
std::string normalised_path(const std::string& path);

// Whether `candidate` is `dir` or lies below it (after resolving symlinks where they exist).
bool path_is_inside(const std::string& candidate, const std::string& dir);

// An output directory that a finished run replaces as a whole. InputError naming `out_dir` when it
// is empty, equals or lies inside one of `inputs`, contains one of them or the current directory,
// exists and `force` is not set, exists and is neither empty nor an earlier crepe output (one with
// a crepe_report.json: --force never deletes a folder of the user's own), exists and is not a
// directory, or its parent cannot be a directory (a file is in the way).
void check_output_directory(const std::string& out_dir, const std::vector<std::string>& inputs, bool force);

// An output file. InputError naming `path` when it is empty or an existing directory, its folder does
// not exist or is not a directory, or it equals or lies inside one of `inputs`.
void check_output_file(const std::string& path, const std::vector<std::string>& inputs);

// Writes `contents` to a temporary file beside `path`, then renames it over `path`: a reader sees
// the old file or the whole new one. InputError naming `path` when the bytes cannot all be written
// (disk full, not writable); the temporary file is removed then.
void write_file_atomically(const std::string& path, const std::string& contents);

}  // namespace crepe::io
