#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "crepe/core/error.hpp"
#include "crepe/core/files.hpp"
#include "test_support.hpp"

namespace crepe {
namespace {

TEST(Files, ReadSmallFileReadsRegularFilesAndNamesWhatIsWrongWithOthers) {
  test::TempDir dir;
  test::write_file(dir.file("a.json"), std::string("{\"x\": 1}\n\0tail", 15));
  EXPECT_EQ(read_small_file(dir.file("a.json")), std::string("{\"x\": 1}\n\0tail", 15));  // bytes as they are
  std::filesystem::create_directory(dir.file("d"));
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  std::filesystem::create_symlink(dir.file("loop"), dir.file("loop"));
  for (const auto& [name, phrase] : {std::pair{"missing", "does not exist"}, std::pair{"d", "is a directory, not a file"},
                                     std::pair{"fifo", "is not a regular file"}, std::pair{"loop", "cannot be read"}}) {
    const std::string message = test::input_error_of([&] { read_small_file(dir.file(name)); });
    EXPECT_EQ(message.rfind(dir.file(name) + ": " + phrase, 0), 0u) << message;
  }
}

}  // namespace
}  // namespace crepe
