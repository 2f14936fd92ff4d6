// What --peft and its flags ask of a fine-tuning run that starts from an --init model: a new
// adapter of a kind (model/peft/), the --init adapter continued, or the --init adapter merged
// into its base for full fine-tuning. Each kind's flags map onto its spec here.
#pragma once

#include <string>

#include "dqe/trainer.h"
#include "model/model_spec.h"
#include "model/peft/adapter.h"

namespace dqe {

struct PeftPlan {
  // The adapter the run trains: a new one of this spec, or, when --init is an adapter of the
  // same kind, the flags' description of it (check_continued_adapter compares them).
  AdapterSpecPtr adapter;
  // --init is an adapter and the run fine-tunes in full: its updates are merged into its base.
  bool merge_init = false;
};

// The plan for --peft on the --init model whose spec is `init`. Throws ConfigError naming the
// flags for a combination that cannot be run (an --init adapter of another kind, one that cannot
// be continued or merged) or settings the base cannot hold.
PeftPlan plan_peft(const TrainConfig& config, const ModelSpec& init);

// An --init adapter continues training its own parameters: the flags must describe them.
// Throws ConfigError naming the flag that differs.
void check_continued_adapter(const TrainConfig& config, const AdapterSpec& flags, const AdapterSpec& adapter);

}  // namespace dqe
