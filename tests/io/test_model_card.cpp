// The pruned checkpoint's model card: what it says of itself and what it keeps of the original's.
#include <gtest/gtest.h>

#include <string>

#include "crepe/io/model_card.hpp"

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

TEST(ModelCard, BaseModelOnlyForHubIds) {
  EXPECT_TRUE(is_hub_id("meta-llama/Llama-2-7b-hf"));
  EXPECT_TRUE(is_hub_id("Qwen/Qwen2.5-0.5B"));
  EXPECT_FALSE(is_hub_id("/models/llama"));
  EXPECT_FALSE(is_hub_id("./llama"));
  EXPECT_FALSE(is_hub_id("llama"));
  EXPECT_FALSE(is_hub_id("a/b/c"));
  EXPECT_FALSE(is_hub_id(""));
}

}  // namespace
}  // namespace crepe::io
