#pragma once
// Reading the small files a user points crepe at (config.json, tokenizer_config.json, --config,
// manifests, traces) in one checked place.
#include <string>

namespace crepe {

// The whole file. InputError naming `path` when it does not exist, is a directory or another
// non-regular file (a FIFO would block the read forever), or cannot be read.
std::string read_small_file(const std::string& path);

}  // namespace crepe
