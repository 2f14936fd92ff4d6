#include "model/heads/task_head.h"

#include "model/heads/heads.h"

namespace dqe {

const TaskHead& task_head(Task task) {
  static const RegressionHead regression;
  static const ClassificationHead classification;
  static const BinaryHead binary;
  switch (task) {
    case Task::kRegression: return regression;
    case Task::kClassification: return classification;
    case Task::kBinary: return binary;
  }
  return regression;
}

}  // namespace dqe
