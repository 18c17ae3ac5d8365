// Output path checks: inputs are never written, moved or deleted; outputs are written whole or not at all.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "crepe/core/error.hpp"
#include "crepe/io/output_paths.hpp"
#include "crepe/io/partial_run.hpp"
#include "test_support.hpp"

namespace crepe::io {
namespace {

namespace fs = std::filesystem;
using crepe::test::TempDir;

TEST(OutputPaths, InsideIsDecidedOnResolvedPaths) {
  TempDir dir;
  fs::create_directories(dir.file("a/b"));
  EXPECT_TRUE(path_is_inside(dir.file("a/b"), dir.file("a")));
  EXPECT_TRUE(path_is_inside(dir.file("a") + "/", dir.file("a")));                 // trailing slash
  EXPECT_TRUE(path_is_inside(dir.file("a/b/../b/new"), dir.file("a/b")));          // "..", not yet existing
  EXPECT_FALSE(path_is_inside(dir.file("ab"), dir.file("a")));                     // a prefix is not a parent
  EXPECT_FALSE(path_is_inside(dir.file("a"), dir.file("a/b")));
  fs::create_directory_symlink(dir.file("a/b"), dir.file("link"));
  EXPECT_TRUE(path_is_inside(dir.file("link/x"), dir.file("a/b")));                 // through a symlink
  EXPECT_EQ(normalised_path(dir.file("a") + "/"), normalised_path(dir.file("a")));
}

TEST(OutputPaths, OutputDirectoryNeverReplacesAnInput) {
  TempDir dir;
  fs::create_directories(dir.file("out/model"));
  test::write_file(dir.file("data.txt"), "text");
  EXPECT_NO_THROW(check_output_directory(dir.file("new"), {dir.file("out/model"), dir.file("data.txt")}, false));
  EXPECT_THROW(check_output_directory(dir.file("out"), {dir.file("out/model")}, true), InputError);  // contains it
  EXPECT_THROW(check_output_directory(dir.file("out/model/x"), {dir.file("out/model")}, true), InputError);  // inside it
  EXPECT_THROW(check_output_directory(dir.file("out"), {}, false), InputError);  // exists, no --force
  EXPECT_THROW(check_output_directory(dir.file("out"), {dir.file("data.txt")}, true), InputError);  // not crepe's
  test::write_file(dir.file("out/crepe_report.json"), "{}");
  EXPECT_NO_THROW(check_output_directory(dir.file("out"), {dir.file("data.txt")}, true));  // an earlier output
  fs::create_directory(dir.file("empty"));
  EXPECT_NO_THROW(check_output_directory(dir.file("empty"), {}, true));
  EXPECT_THROW(check_output_directory(".", {}, true), InputError);  // the current directory
  EXPECT_THROW(check_output_directory("..", {}, true), InputError);
  EXPECT_THROW(check_output_directory(dir.file("data.txt/sub"), {}, true), InputError);  // a file in the way
  EXPECT_THROW(check_output_directory("", {}, true), InputError);
  EXPECT_THROW(check_output_directory("/", {}, true), InputError);
}

TEST(OutputPaths, OutputDirectoryNeverHoldsWhatAnInputLinksTo) {
  // An input folder of links into an earlier output (as a Hugging Face snapshot is links into its
  // blobs): --force would delete what the links lead to.
  TempDir dir;
  fs::create_directories(dir.file("out"));
  test::write_file(dir.file("out/crepe_report.json"), "{}");
  test::write_file(dir.file("out/model.safetensors"), "weights");
  fs::create_directories(dir.file("model/sub"));
  test::write_file(dir.file("model/config.json"), "{}");
  EXPECT_NO_THROW(check_output_directory(dir.file("out"), {dir.file("model")}, true));
  fs::create_symlink(dir.file("out/model.safetensors"), dir.file("model/sub/model.safetensors"));
  try {
    check_output_directory(dir.file("out"), {dir.file("model")}, true);
    ADD_FAILURE() << "an output the input links into was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model/sub/model.safetensors (of the input " + dir.file("model") + ") links to"),
              std::string::npos) << e.what();
  }
  // A link elsewhere is no concern.
  fs::remove(dir.file("model/sub/model.safetensors"));
  fs::create_symlink(dir.file("model/config.json"), dir.file("model/config-link.json"));
  EXPECT_NO_THROW(check_output_directory(dir.file("out"), {dir.file("model")}, true));
}

TEST(OutputPaths, NamesLeaveRoomForTheTemporariesBesideThem) {
  // ".NAME.crepe-tmp-XXXXXX" beside a directory (18 bytes more), "NAME.crepe-tmp-XXXXXX" beside a
  // file (17): a name that leaves no room for them is refused before any work, by name.
  TempDir dir;
  EXPECT_NO_THROW(check_output_directory(dir.file(std::string(237, 'd')), {}, false));
  const std::string long_dir = dir.file(std::string(238, 'd'));
  const std::string message = test::input_error_of([&] { check_output_directory(long_dir, {}, false); });
  EXPECT_NE(message.find(long_dir + ": its name is 238 bytes long; crepe writes beside it under names 18 bytes longer, "
                         "and this file system allows 255"), std::string::npos) << message;
  EXPECT_THROW(check_output_directory(dir.file(std::string(300, 'd')), {}, false), InputError);  // too long in itself
  const auto any = [](const std::string&) { return true; };
  EXPECT_NO_THROW(check_output_file(dir.file(std::string(238, 'f')), {}, any, "x"));
  EXPECT_THROW(check_output_file(dir.file(std::string(239, 'f')), {}, any, "x"), InputError);
}

TEST(OutputPaths, OutputFileChecksAndAtomicWrite) {
  TempDir dir;
  fs::create_directories(dir.file("model"));
  const auto any = [](const std::string&) { return true; };
  const auto earlier = [](const std::string& p) { return test::read_file(p) == "earlier output"; };
  EXPECT_THROW(check_output_file(dir.file("model/config.json"), {dir.file("model")}, any, "x"), InputError);
  EXPECT_THROW(check_output_file(dir.file("model"), {}, any, "x"), InputError);           // a directory
  EXPECT_THROW(check_output_file(dir.file("missing/x.json"), {}, any, "x"), InputError);  // no such folder
  EXPECT_NO_THROW(check_output_file(dir.file("x.json"), {dir.file("model")}, earlier, "x"));  // not there yet
  write_file_atomically(dir.file("x.json"), "first");
  write_file_atomically(dir.file("x.json"), "second");
  EXPECT_EQ(test::read_file(dir.file("x.json")), "second");
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename().string().find("crepe-tmp"), std::string::npos) << entry.path();
  }
  EXPECT_EQ(fs::status(dir.file("x.json")).permissions() & fs::perms::owner_read, fs::perms::owner_read);
  EXPECT_THROW(write_file_atomically(dir.file("missing/x.json"), "text"), InputError);
  // An existing file is replaced only when it is an earlier output of the same kind.
  EXPECT_THROW(check_output_file(dir.file("x.json"), {}, earlier, "an earlier output"), InputError);
  test::write_file(dir.file("x.json"), "earlier output");
  EXPECT_NO_THROW(check_output_file(dir.file("x.json"), {}, earlier, "an earlier output"));
  // Never a device, a pipe or a symlink: the rename would put a plain file in their place.
  EXPECT_THROW(check_output_file("/dev/null", {}, any, "x"), InputError);
  fs::create_symlink(dir.file("x.json"), dir.file("link.json"));
  EXPECT_THROW(check_output_file(dir.file("link.json"), {}, any, "x"), InputError);
}

// A temporary that nobody claims (its writer was killed) is removed by the next writer of the same
// output; a claimed one, another output's, the other form's, and names that only look alike are
// left alone.
TEST(OutputPaths, AbandonedTemporariesAreRemovedAndClaimedOnesKept) {
  TempDir dir;
  const std::string out = dir.file("out");
  fs::create_directories(dir.file(".out.crepe-tmp-dead01/sub"));
  test::write_file(dir.file(".out.crepe-tmp-dead01/sub/model.safetensors"), "half a shard");
  test::write_file(dir.file("out.crepe-tmp-dead02"), "{\"half");  // a file output's temporary
  fs::create_directory(dir.file(".other.crepe-tmp-dead03"));      // another output's
  fs::create_directory(dir.file("out.crepe-tmp-folder"));         // a file temporary's name on a directory
  fs::create_directory(dir.file(".out.crepe-tmp-backup1"));       // seven characters: not mkdtemp's
  fs::create_directory(dir.file(".out.crepe-tmp-back.1"));        // not letters and digits
  fs::create_symlink(dir.file("elsewhere"), dir.file(".out.crepe-tmp-link01"));
  TemporaryClaim claim;
  const std::string live = create_temporary_directory(out, claim);
  EXPECT_EQ(fs::path(live).parent_path(), fs::path(dir.path()));
  EXPECT_EQ(fs::path(live).filename().string().rfind(".out.crepe-tmp-", 0), 0u) << live;
  EXPECT_TRUE(fs::is_empty(live));

  EXPECT_EQ(remove_abandoned_temporaries(out, OutputForm::Directory), 1);
  EXPECT_FALSE(fs::exists(dir.file(".out.crepe-tmp-dead01")));
  EXPECT_TRUE(fs::exists(live));  // its writer is alive
  for (const char* kept : {"out.crepe-tmp-dead02", ".other.crepe-tmp-dead03", "out.crepe-tmp-folder",
                           ".out.crepe-tmp-backup1", ".out.crepe-tmp-back.1"}) {
    EXPECT_TRUE(fs::exists(dir.file(kept))) << kept;
  }
  EXPECT_TRUE(fs::is_symlink(dir.file(".out.crepe-tmp-link01")));
  EXPECT_EQ(remove_abandoned_temporaries(out, OutputForm::File), 1);  // the file form's own
  EXPECT_FALSE(fs::exists(dir.file("out.crepe-tmp-dead02")));
  EXPECT_TRUE(fs::exists(dir.file("out.crepe-tmp-folder")));

  claim = TemporaryClaim();  // the writer is gone and never cleaned up
  EXPECT_EQ(remove_abandoned_temporaries(out, OutputForm::Directory), 1);
  EXPECT_FALSE(fs::exists(live));
  EXPECT_EQ(remove_abandoned_temporaries(dir.file("never-written"), OutputForm::Directory), 0);
}

// --force's replacement: the earlier output moves aside and goes only once the new one is in place.
// One set aside by a run killed in between is all there is of the output while OUT is missing.
TEST(OutputPaths, MoveIntoPlaceReplacesTheEarlierOutputAndKeepsAnOrphanedOne) {
  TempDir dir;
  const std::string out = dir.file("out");
  fs::create_directory(dir.file("first"));
  test::write_file(dir.file("first/model.safetensors"), "first");
  move_into_place(dir.file("first"), out);
  EXPECT_EQ(test::read_file(out + "/model.safetensors"), "first");
  fs::create_directory(dir.file("second"));
  test::write_file(dir.file("second/model.safetensors"), "second");
  move_into_place(dir.file("second"), out);
  EXPECT_EQ(test::read_file(out + "/model.safetensors"), "second");
  for (const auto& entry : fs::directory_iterator(dir.path())) EXPECT_EQ(entry.path().filename(), "out");

  fs::rename(out, dir.file(".out.crepe-old-Ab12Cd"));  // killed between the two renames
  EXPECT_EQ(remove_abandoned_temporaries(out, OutputForm::Directory), 0);
  EXPECT_EQ(test::read_file(dir.file(".out.crepe-old-Ab12Cd/model.safetensors")), "second");
  fs::create_directory(out);  // a later run wrote the output again: the old one is garbage now
  EXPECT_EQ(remove_abandoned_temporaries(out, OutputForm::Directory), 1);
  EXPECT_FALSE(fs::exists(dir.file(".out.crepe-old-Ab12Cd")));
}

TEST(OutputPaths, PartialRunDirectoryMustBeCrepesAndHoldNoInput) {
  TempDir dir;
  EXPECT_NO_THROW(check_partial_directory(dir.file("out.partial"), {}));  // absent
  fs::create_directories(dir.file("out.partial"));
  test::write_file(dir.file("out.partial/notes.txt"), "mine");
  EXPECT_THROW(check_partial_directory(dir.file("out.partial"), {}), InputError);  // no manifest: not crepe's
  test::write_file(dir.file("out.partial/manifest.json"), "{}");
  EXPECT_NO_THROW(check_partial_directory(dir.file("out.partial"), {}));
  test::write_file(dir.file("out.partial/calib.txt"), "text");
  EXPECT_THROW(check_partial_directory(dir.file("out.partial"), {dir.file("out.partial/calib.txt")}), InputError);
}

}  // namespace
}  // namespace crepe::io

namespace crepe::io {
namespace {

// A data file's fingerprint says, readably, what a refused resume compares: size and modification
// time in UTC to the nanosecond. Pipes have none.
TEST(OutputPaths, FileFingerprintIsSizeAndUtcModificationTime) {
  TempDir dir;
  test::write_file(dir.file("data.txt"), "12345");
  const struct timespec times[2] = {{0, UTIME_OMIT}, {1767323045, 123456789}};  // 2026-01-02 03:04:05.123456789 UTC
  ASSERT_EQ(::utimensat(AT_FDCWD, dir.file("data.txt").c_str(), times, 0), 0);
  EXPECT_EQ(file_fingerprint(dir.file("data.txt")), "size 5, modified 2026-01-02 03:04:05.123456789 UTC");
  ASSERT_EQ(::mkfifo(dir.file("pipe").c_str(), 0600), 0);
  EXPECT_EQ(file_fingerprint(dir.file("pipe")), "");
  EXPECT_EQ(file_fingerprint(dir.file("missing")), "");
}

}  // namespace
}  // namespace crepe::io
