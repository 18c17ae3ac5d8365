#include "crepe/io/model_card.hpp"

#include <regex>
#include <sstream>
#include <vector>

namespace crepe::io {
namespace {

struct SplitCard {
  std::vector<std::string> front_matter;  // the YAML lines between the "---" fences
  std::string body;
};

// A card may open with YAML front matter fenced by "---" lines; without a closing fence the whole
// text is body.
SplitCard split_front_matter(const std::string& card) {
  SplitCard split{{}, card};
  std::istringstream in(card);
  std::string line;
  if (!std::getline(in, line) || line != "---") return split;
  std::vector<std::string> yaml;
  while (std::getline(in, line)) {
    if (line == "---") {
      split.front_matter = std::move(yaml);
      const auto rest = in.tellg();
      split.body = rest < 0 ? std::string() : card.substr(static_cast<size_t>(rest));
      return split;
    }
    yaml.push_back(line);
  }
  return split;
}

// The original's license keys (top-level "license", "license_name", "license_link"), as written.
std::vector<std::string> license_lines(const std::vector<std::string>& yaml) {
  std::vector<std::string> kept;
  for (const std::string& line : yaml) {
    for (const char* key : {"license:", "license_name:", "license_link:"}) {
      if (line.rfind(key, 0) == 0) kept.push_back(line);
    }
  }
  return kept;
}

std::string trim_leading_blank_lines(const std::string& text) {
  const size_t start = text.find_first_not_of("\r\n");
  return start == std::string::npos ? std::string() : text.substr(start);
}

}  // namespace

bool is_hub_id(const std::string& name_or_path) {
  static const std::regex hub_id(R"([A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)");
  return std::regex_match(name_or_path, hub_id);
}

std::string pruned_model_card(const ModelCardFacts& facts) {
  const SplitCard original = split_front_matter(facts.original_card);
  std::ostringstream card;
  card << "---\n";
  if (!facts.base_model.empty()) card << "base_model: " << facts.base_model << "\n";
  for (const std::string& line : license_lines(original.front_matter)) card << line << "\n";
  card << "tags:\n- pruned\n- sparse\n- crepe\n---\n\n";
  card << "# " << facts.model_name << ", pruned with crepe\n\n" << facts.what_was_done << "\n";
  const std::string body = trim_leading_blank_lines(original.body);
  if (!body.empty()) {
    card << "\n## The original model's card\n\n"
         << "What follows describes the dense model: its measurements (benchmarks, checksums, reference "
            "outputs) are not this checkpoint's.\n\n"
         << body;
    if (body.back() != '\n') card << "\n";
  }
  return card.str();
}

}  // namespace crepe::io
