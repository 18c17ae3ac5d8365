// The pruned checkpoint's model card: what it says of itself and what it keeps of the original's.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "crepe/io/model_card.hpp"
#include "test_support.hpp"

namespace crepe::io {
namespace {

ModelCardFacts facts_with(const std::string& original) {
  ModelCardFacts f;
  f.model_name = "Llama-2-7b-hf";
  f.what_was_done = "Half of it is zero.";
  f.original_card = original;
  return f;
}

TEST(ModelCard, KeepsTheOriginalsLicenseAndBodyUnderItsOwnHeading) {
  const std::string original =
      "---\nlanguage:\n- en\nlicense: llama2\nlicense_link: https://example.com/LICENSE\npipeline_tag: text-generation\n---\n\n"
      "# Llama 2\n\nPerplexity 5.47.\n";
  ModelCardFacts f = facts_with(original);
  f.base_model = "meta-llama/Llama-2-7b-hf";
  const std::string card = pruned_model_card(f);
  const std::string expected =
      "---\nbase_model: meta-llama/Llama-2-7b-hf\nlicense: llama2\nlicense_link: https://example.com/LICENSE\n"
      "tags:\n- pruned\n- sparse\n- crepe\n---\n\n# Llama-2-7b-hf, pruned with crepe\n\nHalf of it is zero.\n\n"
      "## The original model's card\n\nWhat follows describes the dense model: its measurements (benchmarks, checksums, "
      "reference outputs) are not this checkpoint's.\n\n# Llama 2\n\nPerplexity 5.47.\n";
  EXPECT_EQ(card, expected);
}

TEST(ModelCard, WithoutFrontMatterOrOriginal) {
  // No front matter: the whole original is body; no closing fence: the same.
  const std::string plain = pruned_model_card(facts_with("# A model\nno newline at the end"));
  EXPECT_NE(plain.find("## The original model's card"), std::string::npos);
  EXPECT_NE(plain.find("# A model\nno newline at the end\n"), std::string::npos);
  EXPECT_EQ(plain.find("base_model"), std::string::npos);
  const std::string unclosed = pruned_model_card(facts_with("---\nlicense: mit\n# body"));
  EXPECT_NE(unclosed.find("---\nlicense: mit\n# body\n"), std::string::npos);  // kept as text, not parsed
  EXPECT_EQ(unclosed.find("license: mit\ntags"), std::string::npos);
  // No original card: no section for it.
  const std::string alone = pruned_model_card(facts_with(""));
  EXPECT_EQ(alone.find("original model's card"), std::string::npos);
  EXPECT_EQ(alone, "---\ntags:\n- pruned\n- sparse\n- crepe\n---\n\n# Llama-2-7b-hf, pruned with crepe\n\nHalf of it is zero.\n");
}

// Cards come with license lists, Windows line endings and byte order marks.
TEST(ModelCard, ReadsFrontMatterAsHuggingFaceWritesIt) {
  const std::string listed = pruned_model_card(facts_with("---\nlicense:\n- apache-2.0\n- mit\ntags:\n- text\n---\nBody\n"));
  EXPECT_NE(listed.find("---\nlicense:\n- apache-2.0\n- mit\ntags:\n- pruned\n"), std::string::npos) << listed;
  EXPECT_EQ(listed.find("- text"), std::string::npos) << listed;
  const std::string windows = pruned_model_card(facts_with("\xEF\xBB\xBF---\r\nlicense: mit\r\n---\r\n# Body\r\n"));
  EXPECT_NE(windows.find("---\nlicense: mit\ntags:"), std::string::npos) << windows;
  EXPECT_NE(windows.find("# Body\r\n"), std::string::npos) << windows;
  EXPECT_EQ(windows.find("license: mit\r"), std::string::npos) << windows;
}

TEST(ModelCard, BaseModelOnlyForHubIds) {
  EXPECT_TRUE(is_hub_id("meta-llama/Llama-2-7b-hf"));
  EXPECT_TRUE(is_hub_id("Qwen/Qwen2.5-0.5B"));
  EXPECT_FALSE(is_hub_id("/models/llama"));
  EXPECT_FALSE(is_hub_id("./llama"));
  EXPECT_FALSE(is_hub_id("llama"));
  EXPECT_FALSE(is_hub_id("a/b/c"));
  EXPECT_FALSE(is_hub_id(""));
}

// The base model comes from a cache snapshot's path, or from config.json's "_name_or_path" when it
// is hub-shaped, a string, and no local path of that name exists; never from a broken config.
TEST(ModelCard, BaseModelOfADirectory) {
  test::TempDir dir;
  const std::string snapshot = dir.file("hub/models--meta-llama--Llama-2-7b-hf/snapshots/8cca527612d856d7d32bd94f8103728d614eb852");
  std::filesystem::create_directories(snapshot);
  EXPECT_EQ(base_model_of(snapshot), "meta-llama/Llama-2-7b-hf");
  EXPECT_EQ(base_model_of(snapshot + "/"), "meta-llama/Llama-2-7b-hf");
  EXPECT_EQ(model_name_of(snapshot), "Llama-2-7b-hf");

  const std::string local = dir.file("work/llama");
  std::filesystem::create_directories(local);
  EXPECT_EQ(model_name_of(local + "/"), "llama");
  auto with_config = [&](const std::string& json) {
    test::write_file(local + "/config.json", json);
    return base_model_of(local);
  };
  EXPECT_EQ(with_config(R"({"_name_or_path": "Qwen/Qwen2.5-0.5B"})"), "Qwen/Qwen2.5-0.5B");
  EXPECT_EQ(with_config(R"({"_name_or_path": "/models/llama"})"), "");
  EXPECT_EQ(with_config(R"({"_name_or_path": null})"), "");
  EXPECT_EQ(with_config(R"({"_name_or_path": 7})"), "");
  EXPECT_EQ(with_config("not json"), "");
  EXPECT_EQ(with_config("[1, 2]"), "");
  // "org/name" exists beside the model (in its parent directory): a local path shaped like a hub id.
  std::filesystem::create_directories(dir.file("work/org/name"));
  EXPECT_EQ(with_config(R"({"_name_or_path": "org/name"})"), "");
}

}  // namespace
}  // namespace crepe::io
