// Progress of long work: a live line redrawn in place when stderr is a terminal, and a
// plain log line every few seconds otherwise (CI logs, files).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dqe {

class Progress {
 public:
  // total <= 0 when unknown (no bar, no ETA). unit names what is counted ("step", "line").
  Progress(std::string component, int64_t total, std::string unit);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // done: units completed so far; extra: what to show after the counts ("loss 0.41 lr 2e-05").
  void update(int64_t done, const std::string& extra = "");
  // For work whose total is unknown but whose share done is (lines of a file read by bytes):
  // the count, the share as a percentage, a bar and an ETA from it. A negative share shows the
  // count alone.
  void update_share(int64_t done, double share, const std::string& extra = "");
  // Ends the live line (a newline on a terminal).
  void finish();

  static bool stderr_is_tty();

 private:
  std::string component_, unit_;
  int64_t total_;
  bool tty_;
  bool drawn_ = false;
  int64_t start_done_ = -1;
  double start_share_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace dqe
