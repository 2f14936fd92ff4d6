// What train and pretrain check and record alike beyond each knob's own check (dqe/knobs.h):
// the checks that relate two knobs, and the dropout's record. TrainConfig and PretrainConfig
// name these fields alike.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/checks.h"
#include "dqe/errors.h"
#include "model/model_spec.h"

namespace dqe {

template <typename Config>
void check_model_shape_flags(const Config& c) {
  check_flag(c.heads >= 1 && c.heads <= c.hidden && c.hidden % c.heads == 0, "--heads", "a divisor of --hidden", c.heads);
}

template <typename Config>
void check_schedule_flags(const Config& c) {
  if (c.epochs <= 0 && c.max_steps <= 0) throw ConfigError("--epochs or --max-steps must be > 0");
}

// The dropout in to_json(): unset, it is the --init model's own, and on --resume the run's, so
// not written; from scratch it is the default.
template <typename Config>
void record_dropout(nlohmann::ordered_json& j, const Config& c) {
  if (c.dropout) return;
  if (c.init.empty() && !c.resume)
    j["dropout"] = kDefaultDropout;
  else
    j.erase("dropout");
}

}  // namespace dqe
