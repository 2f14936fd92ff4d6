// placeholder: being written (dqe report)
#pragma once

#include <string>

namespace dqe {

struct ReportConfig {
  std::string run_dir;
  std::string out = "report.html";
};

}  // namespace dqe
