#include "data/task_spec.h"

#include "dqe/errors.h"

namespace dqe {

std::string task_name(Task task) {
  switch (task) {
    case Task::kRegression: return "regression";
    case Task::kClassification: return "classification";
    case Task::kBinary: return "binary";
  }
  return "regression";
}

Task parse_task(const std::string& name) {
  if (name == "regression") return Task::kRegression;
  if (name == "classification") return Task::kClassification;
  if (name == "binary") return Task::kBinary;
  throw ConfigError("--task must be regression, classification or binary, got \"" + name + "\"");
}


std::string fusion_name(Fusion fusion) {
  switch (fusion) {
    case Fusion::kAdd: return "add";
    case Fusion::kGate: return "gate";
    case Fusion::kConcat: return "concat";
  }
  return "add";
}

Fusion parse_fusion(const std::string& name) {
  if (name == "add") return Fusion::kAdd;
  if (name == "gate") return Fusion::kGate;
  if (name == "concat") return Fusion::kConcat;
  throw ConfigError("--fusion must be gate, concat or add, got \"" + name + "\"");
}

}  // namespace dqe
