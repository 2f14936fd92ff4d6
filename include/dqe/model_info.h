// `dqe info MODEL`: what a model directory is, to choose which artifact to ship. Its kind (a
// model, an adapter and its base, a pretrained encoder, an ensemble), task and labels, shape,
// parameters and stored bytes by dtype, the inputs it reads, what it carries for score
// (detection statistics, the drift reference), its dev metric when it was trained, and the
// formats it exports to (with the reason when Hugging Face cannot reproduce it).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "dqe/knobs.h"

namespace dqe {

struct InfoConfig {
  // Checkpoint, run directory (its best), Hugging Face directory, PEFT adapter or ensemble.
  std::string model;
  // Where an adapter's base is, when it moved from where the adapter recorded it.
  std::string base;
  // Print the description as JSON instead of lines of text.
  bool json = false;

  template <typename Self, typename Visitor>
  static void visit_knobs(Self& c, Visitor&& v) {
    v(Knob("model", "Model (also the first argument): checkpoint, run directory (its best), Hugging Face directory, "
                    "PEFT adapter or ensemble directory")
          .hide_default(),
      c.model);
    v(Knob("base", "The base model of an adapter, when it moved from where it recorded it").hide_default(), c.base);
    v(Knob("json", "Print the description as JSON").as_flag(), c.json);
  }
  // Throws ConfigError when no model is given.
  void validate() const;
};

// The description, keys in the order the text shows them. Throws ModelError naming the
// directory when it is not a model.
nlohmann::ordered_json describe_model(const InfoConfig& config);

// The text `dqe info` prints: one "key: value" line per entry.
std::string format_model_info(const nlohmann::ordered_json& info);

}  // namespace dqe
