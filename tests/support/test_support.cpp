#include "test_support.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace crepe::test {

std::string shared_dir() {
  if (const char* env = std::getenv("CREPE_SHARED_DIR")) return env;
  return CREPE_SHARED_DIR;
}

std::string shared_path(const std::string& relative) { return shared_dir() + "/" + relative; }

std::string source_dir() { return CREPE_SOURCE_DIR; }

std::string test_device_name() {
  const char* env = std::getenv("CREPE_TEST_DEVICE");
  return env ? env : "";
}

Placement test_placement() {
  Placement placement;
  if (!test_device_name().empty()) placement.device = parse_device(test_device_name(), "CREPE_TEST_DEVICE");
  return placement;
}

engine::RunnerOptions test_runner_options() {
  engine::RunnerOptions options;
  options.placement = test_placement();
  options.prefetch = options.placement.device.is_cuda();  // as the CLI does
  options.progress = false;
  return options;
}

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "crepe-test-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ignored);
  fs::remove_all(path_, ignored);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_file(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<std::string> vocab_test_inputs(const std::string& name) {
  const std::string file = read_file(shared_path("tokenizers/vectors/" + name + ".inp"));
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t begin = 0;
  for (size_t at; (at = file.find(separator, begin)) != std::string::npos; begin = at + separator.size())
    inputs.push_back(file.substr(begin, at - begin));
  EXPECT_EQ(begin, file.size()) << "text after the last separator";
  return inputs;
}

std::vector<std::vector<int32_t>> vocab_test_ids(const std::string& name) {
  std::vector<std::vector<int32_t>> outputs;
  std::istringstream lines(read_file(shared_path("tokenizers/vectors/" + name + ".out")));
  for (std::string line; std::getline(lines, line);) {
    std::istringstream ids(line);
    outputs.emplace_back(std::istream_iterator<int32_t>(ids), std::istream_iterator<int32_t>());
  }
  return outputs;
}

namespace {

// The arguments, with `--device CREPE_TEST_DEVICE` added to the commands that compute.
std::vector<std::string> on_test_device(std::vector<std::string> args) {
  const std::string device = test_device_name();
  const bool computes = !args.empty() && (args[0] == "eval" || args[0] == "prune" || args[0] == "search");
  const bool names_device = std::find(args.begin(), args.end(), "--device") != args.end();
  if (!device.empty() && computes && !names_device) {
    args.push_back("--device");
    args.push_back(device);
  }
  return args;
}

// Replaces this (forked) process with the built crepe binary; never returns.
[[noreturn]] void exec_crepe(const std::vector<std::string>& args) {
  std::string binary = CREPE_BINARY;
  std::vector<std::string> copies = on_test_device(args);  // execv wants mutable strings
  std::vector<char*> argv = {binary.data()};
  for (auto& arg : copies) argv.push_back(arg.data());
  argv.push_back(nullptr);
  execv(binary.c_str(), argv.data());
  _exit(127);
}

// Waits for the child and collects its exit code (128 + signal when killed) and captured output.
CommandResult wait_for(pid_t pid, const std::string& out_path, const std::string& err_path) {
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

// Runs crepe with stdout and stderr captured through files; stdin is read from `stdin_text` when
// given, and otherwise the test's own stdin is inherited.
CommandResult run_crepe_capturing(const std::vector<std::string>& args, const std::string* stdin_text) {
  TempDir scratch;
  const std::string in_path = scratch.file("stdin");
  const std::string out_path = scratch.file("stdout");
  const std::string err_path = scratch.file("stderr");
  if (stdin_text) write_file(in_path, *stdin_text);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    if ((stdin_text && !freopen(in_path.c_str(), "r", stdin)) || !freopen(out_path.c_str(), "w", stdout) ||
        !freopen(err_path.c_str(), "w", stderr))
      _exit(127);
    exec_crepe(args);
  }
  return wait_for(pid, out_path, err_path);
}

}  // namespace

CommandResult run_crepe(const std::vector<std::string>& args) { return run_crepe_capturing(args, nullptr); }

CommandResult run_crepe(const std::vector<std::string>& args, const std::string& stdin_text) {
  return run_crepe_capturing(args, &stdin_text);
}

}  // namespace crepe::test
