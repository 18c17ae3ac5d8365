#pragma once
// Reading the small files a user points crepe at (config.json, tokenizer_config.json, --config,
// manifests, traces) in one checked place.
#include <nlohmann/json_fwd.hpp>

#include <string>

namespace crepe {

// The whole file. InputError naming `path` when it does not exist, is a directory or another
// non-regular file (a FIFO would block the read forever), or cannot be read.
std::string read_small_file(const std::string& path);

// The file parsed as JSON: read_small_file's checks, then InputError "PATH: invalid JSON: why".
nlohmann::json read_json_file(const std::string& path);

}  // namespace crepe
