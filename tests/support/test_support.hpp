#pragma once
// Helpers shared by crepe's tests: where the shared data lives, scratch directories, and running
// the crepe binary as a user would.
#include <string>
#include <vector>

namespace crepe::test {

// ../shared beside the checkout (CREPE_SHARED_DIR overrides).
std::string shared_dir();
std::string shared_path(const std::string& relative);
std::string source_dir();

// A fresh directory under the system temp dir, removed (recursively) when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the built crepe binary with arguments (no shell), capturing stdout and stderr.
CommandResult run_crepe(const std::vector<std::string>& args);
// Same, with `stdin_text` as the command's standard input.
CommandResult run_crepe(const std::vector<std::string>& args, const std::string& stdin_text);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& contents);

}  // namespace crepe::test
