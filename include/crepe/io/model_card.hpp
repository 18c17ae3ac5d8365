#pragma once
// The model card (README.md) of a pruned checkpoint. Hugging Face shows a directory's README.md as
// the model's card; copying the dense model's card would present its measurements (benchmarks,
// checksums, perplexities) as the pruned model's. The pruned card says what the checkpoint is and
// keeps the original card below, under a heading that says whose it is, with the original's
// license metadata carried into the new front matter (LLaMA-family licenses ask derivatives to
// keep them).
#include <string>

namespace crepe::io {

struct ModelCardFacts {
  std::string model_name;       // the source directory's name, for the title
  std::string base_model;       // a Hugging Face hub id ("org/name") or empty: then no base_model key
  std::string what_was_done;    // one paragraph (Markdown) describing the pruning
  std::string original_card;    // the source's README.md, or empty when it has none
};

// The card's text: YAML front matter (base_model, the original's license keys, tags), a title, the
// paragraph, and the original card's body (its front matter removed) under "The original model's card".
std::string pruned_model_card(const ModelCardFacts& facts);

// Whether `name_or_path` has the shape of a hub repository id ("org/name").
bool is_hub_id(const std::string& name_or_path);

// The hub id of the model in `model_dir`, or "" when it cannot be told: from a Hugging Face cache
// snapshot's path (.../models--org--name/snapshots/<revision>), else config.json's "_name_or_path"
// when it is hub-shaped and no such local path exists (from_pretrained("models/llama") records a
// relative path of the same shape). Never throws: a card is not worth failing a finished run.
std::string base_model_of(const std::string& model_dir);

// What the card calls the model: the hub id's name for a cache snapshot (whose directory is named
// by a commit hash), else the directory's name.
std::string model_name_of(const std::string& model_dir);

// What the source directory tells the card: model_name_of, base_model_of and its README.md (if
// any); what_was_done is the caller's.
ModelCardFacts source_card_facts(const std::string& model_dir);

}  // namespace crepe::io
