#include "crepe/core/files.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "crepe/core/error.hpp"

namespace crepe {

std::string read_small_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);  // follows symlinks, as reading does
  require(!ec || ec == std::errc::no_such_file_or_directory, path, "cannot be read: " + ec.message());
  require(fs::exists(status), path, "does not exist");
  require(!fs::is_directory(status), path, "is a directory, not a file");
  require(fs::is_regular_file(status), path, "is not a regular file");
  std::ifstream in(path, std::ios::binary);
  require(static_cast<bool>(in), path, "cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  require(!in.bad(), path, "cannot be read");
  return text.str();
}

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_small_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw_input_error(path, std::string("invalid JSON: ") + e.what());
  }
}

}  // namespace crepe
