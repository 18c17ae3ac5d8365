// The checkpoint writer: a whole mirror of its source or nothing, and a temporary that is claimed
// while it is filled and released once it is the output.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "crepe/io/checkpoint.hpp"
#include "crepe/io/checkpoint_writer.hpp"
#include "crepe/io/output_paths.hpp"
#include "test_support.hpp"

namespace crepe::io {
namespace {

namespace fs = std::filesystem;

// Whether another open file description could take an exclusive flock on `path` now.
bool unlocked(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
  ::close(fd);
  return free;
}

TEST(CheckpointWriter, CommitMirrorsTheSourceAndReleasesTheOutput) {
  test::TempDir dir;
  const std::string source = test::shared_path("models/stories260k");
  const Checkpoint ckpt = Checkpoint::open(source);
  const std::string out = dir.file("out");
  {
    CheckpointWriter writer(ckpt, out, /*force=*/false);
    EXPECT_EQ(fs::path(writer.temp_dir()).filename().string().rfind(".out.crepe-tmp-", 0), 0u) << writer.temp_dir();
    EXPECT_FALSE(unlocked(writer.temp_dir()));                 // claimed while it is filled
    EXPECT_EQ(remove_abandoned_temporaries(out, OutputForm::Directory), 0);           // so no cleaner takes it
    EXPECT_FALSE(fs::exists(out));
    writer.commit();
    EXPECT_TRUE(unlocked(out));  // the output is a plain folder again: later writes into it must not wait
    write_file_atomically(out + "/crepe_report.json", "{}\n");
  }
  EXPECT_EQ(test::read_file(out + "/model.safetensors"), test::read_file(source + "/model.safetensors"));
  EXPECT_EQ(test::read_file(out + "/config.json"), test::read_file(source + "/config.json"));
  for (const auto& entry : fs::directory_iterator(dir.path())) EXPECT_EQ(entry.path().filename(), "out");
}

TEST(CheckpointWriter, AWriterGoneBeforeCommitLeavesNothing) {
  test::TempDir dir;
  const Checkpoint ckpt = Checkpoint::open(test::shared_path("models/stories260k"));
  std::string temp;
  {
    CheckpointWriter writer(ckpt, dir.file("out"), /*force=*/false);
    temp = writer.temp_dir();
    EXPECT_TRUE(fs::is_directory(temp));
  }
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

}  // namespace
}  // namespace crepe::io
