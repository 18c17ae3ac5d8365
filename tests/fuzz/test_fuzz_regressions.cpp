// Replays inputs through the fuzz harnesses (fuzz/fuzz_*.cpp, linked without their libFuzzer entry
// points), in the ordinary test suite and under the sanitizer build: every file under
// tests/data/bad/fuzz-regressions/<target>/ (inputs a fuzzer once found crashing or throwing the
// wrong exception), plus the hand-made bad corpus of tests/data/bad/ for the parser each file is for.
// Each must be accepted or refused with crepe::InputError, and nothing else.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "crepe/core/error.hpp"
#include "fuzz_harness.hpp"

namespace crepe {
namespace {

namespace fs = std::filesystem;
using Harness = std::function<void(const uint8_t*, size_t)>;

const std::map<std::string, Harness>& harnesses() {
  static const std::map<std::string, Harness> all = {
      {"safetensors_header", fuzz::safetensors_header},
      {"tokenizer_json", fuzz::tokenizer_json},
      {"sentencepiece_model", fuzz::sentencepiece_model},
      {"config_json", fuzz::config_json},
  };
  return all;
}

std::string bad_dir() { return std::string(CREPE_SOURCE_DIR) + "/tests/data/bad"; }

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// "" when the harness accepts or refuses the input with an InputError; otherwise what escaped.
std::string replay(const Harness& harness, const fs::path& path) {
  const std::string bytes = read_bytes(path);
  try {
    harness(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  } catch (const InputError& e) {
    const std::string message = e.what();
    if (message.find('\n') != std::string::npos) return "InputError message spans lines: " + message;
  } catch (const std::exception& e) {
    return std::string("escaped: ") + e.what();
  } catch (...) {
    return "escaped: a non-std exception";
  }
  return "";
}

// The harness a file of the bad corpus is for, by its name; "" for none.
std::string harness_for(const fs::path& path) {
  const std::string name = path.filename().string();
  if (path.extension() == ".safetensors") return "safetensors_header";
  if (name == "tokenizer.json") return "tokenizer_json";
  if (name == "tokenizer.model") return "sentencepiece_model";
  if (name == "config.json") return "config_json";
  return "";
}

TEST(FuzzRegressions, EveryFoundInputIsAcceptedOrAnInputError) {
  const fs::path root = fs::path(bad_dir()) / "fuzz-regressions";
  int replayed = 0;
  if (fs::exists(root)) {
    for (const auto& target : fs::directory_iterator(root)) {
      if (!target.is_directory()) continue;
      const auto harness = harnesses().find(target.path().filename().string());
      ASSERT_NE(harness, harnesses().end()) << "no harness for " << target.path();
      for (const auto& input : fs::directory_iterator(target.path())) {
        EXPECT_EQ(replay(harness->second, input.path()), "") << input.path();
        ++replayed;
      }
    }
  }
  std::printf("replayed %d fuzz regression input(s)\n", replayed);
}

TEST(FuzzRegressions, HandMadeBadCorpusIsRefusedWithInputError) {
  int replayed = 0;
  for (const auto& entry : fs::recursive_directory_iterator(bad_dir())) {
    if (!entry.is_regular_file() || entry.path().string().find("fuzz-regressions") != std::string::npos) continue;
    const std::string harness = harness_for(entry.path());
    if (harness.empty()) continue;
    EXPECT_EQ(replay(harnesses().at(harness), entry.path()), "") << entry.path();
    ++replayed;
  }
  EXPECT_GE(replayed, 15);
}

}  // namespace
}  // namespace crepe
