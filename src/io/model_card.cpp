#include "crepe/io/model_card.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <vector>

#include "crepe/io/output_paths.hpp"

namespace crepe::io {
namespace {

struct SplitCard {
  std::vector<std::string> front_matter;  // the YAML lines between the "---" fences
  std::string body;
};

std::string without_carriage_return(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// A card may open with YAML front matter fenced by "---" lines (after a UTF-8 byte order mark, with
// Windows line endings or not); without a closing fence the whole text is body.
SplitCard split_front_matter(const std::string& card) {
  SplitCard split{{}, card};
  const std::string bom = "\xEF\xBB\xBF";
  const std::string text = card.rfind(bom, 0) == 0 ? card.substr(bom.size()) : card;
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || without_carriage_return(line) != "---") return split;
  std::vector<std::string> yaml;
  while (std::getline(in, line)) {
    line = without_carriage_return(line);
    if (line == "---") {
      split.front_matter = std::move(yaml);
      const auto rest = in.tellg();
      split.body = rest < 0 ? std::string() : text.substr(static_cast<size_t>(rest));
      return split;
    }
    yaml.push_back(line);
  }
  return split;
}

// The original's license keys (top-level "license", "license_name", "license_link"), each with the
// lines that continue it (a list's "- " items, indented text).
std::vector<std::string> license_lines(const std::vector<std::string>& yaml) {
  std::vector<std::string> kept;
  bool in_license_key = false;
  for (const std::string& line : yaml) {
    const bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t' || line[0] == '-');
    if (!continuation) {
      in_license_key = false;
      for (const char* key : {"license:", "license_name:", "license_link:"}) in_license_key |= line.rfind(key, 0) == 0;
    }
    if (in_license_key) kept.push_back(line);
  }
  return kept;
}

std::string trim_leading_blank_lines(const std::string& text) {
  const size_t start = text.find_first_not_of("\r\n");
  return start == std::string::npos ? std::string() : text.substr(start);
}

namespace fs = std::filesystem;

// "org/name" when `dir` is a snapshot in Hugging Face's cache (models--org--name/snapshots/<rev>).
std::string cached_hub_id(const fs::path& dir) {
  const fs::path snapshots = dir.parent_path();
  const std::string repo = snapshots.parent_path().filename().string();
  const std::string prefix = "models--";
  if (snapshots.filename() != "snapshots" || repo.rfind(prefix, 0) != 0) return "";
  const std::string id = repo.substr(prefix.size());
  const size_t separator = id.find("--");
  if (separator == std::string::npos) return "";
  return id.substr(0, separator) + "/" + id.substr(separator + 2);
}

}  // namespace

std::string base_model_of(const std::string& model_dir) {
  try {
    const fs::path dir = normalised_path(model_dir);
    const std::string cached = cached_hub_id(dir);
    if (!cached.empty()) return cached;
    std::ifstream in(dir / "config.json");
    const nlohmann::json config = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!config.is_object() || !config.contains("_name_or_path") || !config["_name_or_path"].is_string()) return "";
    const std::string name = config["_name_or_path"].get<std::string>();
    std::error_code ec;
    const bool local = fs::exists(name, ec) || fs::exists(dir.parent_path() / name, ec);
    return is_hub_id(name) && !local ? name : "";
  } catch (const std::exception&) {
    return "";
  }
}

std::string model_name_of(const std::string& model_dir) {
  const fs::path dir = normalised_path(model_dir);
  const std::string cached = cached_hub_id(dir);
  return cached.empty() ? dir.filename().string() : cached.substr(cached.find('/') + 1);
}

ModelCardFacts source_card_facts(const std::string& model_dir) {
  ModelCardFacts facts;
  facts.model_name = model_name_of(model_dir);
  facts.base_model = base_model_of(model_dir);
  const fs::path readme = fs::path(model_dir) / "README.md";
  std::error_code ec;
  if (fs::is_regular_file(readme, ec)) {
    std::ifstream in(readme, std::ios::binary);
    facts.original_card.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return facts;
}

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
