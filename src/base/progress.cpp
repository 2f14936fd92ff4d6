#include "base/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/format.h"
#include "base/log.h"

namespace dqe {


namespace {
// Seconds between plain log lines when stderr is not a terminal.
constexpr double kLogEverySeconds = 10.0;
// Seconds between redraws of the live line.
constexpr double kDrawEverySeconds = 0.1;
}  // namespace

bool Progress::stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string component, int64_t total, std::string unit)
    : component_(std::move(component)), unit_(std::move(unit)), total_(total), tty_(stderr_is_tty()) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::update(int64_t done, const std::string& extra) {
  update_share(done, total_ > 0 ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total_)) : -1.0, extra);
}

void Progress::update_share(int64_t done, double share, const std::string& extra) {
  const auto now = std::chrono::steady_clock::now();
  if (start_done_ < 0) {
    start_done_ = done;
    start_share_ = std::max(0.0, share);
    start_ = now;
  }
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  const bool last = total_ > 0 && done >= total_;
  if (since_draw < (tty_ ? kDrawEverySeconds : kLogEverySeconds) && !last) return;
  last_draw_ = now;

  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string line = unit_ + " " + std::to_string(done);
  if (total_ > 0) line += "/" + std::to_string(total_);
  else if (share >= 0) line += " (" + format_fixed(100.0 * share, 0) + "%)";
  if (!extra.empty()) line += " " + extra;
  // The ETA from the share done since the first update (work before it, a resumed run's
  // steps, took no time here).
  const double progressed = share - start_share_;
  if (share >= 0 && share < 1 && progressed > 0 && elapsed > 0)
    line += " ETA " + format_duration(elapsed * (1.0 - share) / progressed);

  if (tty_) {
    std::string bar;
    if (share >= 0) {
      const int width = 20;
      const int filled = static_cast<int>(width * std::min(1.0, share));
      bar = "[" + std::string(filled, '=') + std::string(width - filled, ' ') + "] ";
    }
    std::fprintf(stderr, "\r\033[K[%s] %s%s", component_.c_str(), bar.c_str(), line.c_str());
    std::fflush(stderr);
    drawn_ = true;
  } else {
    detail::logger(component_)->info(line);
  }
}

void Progress::finish() {
  if (tty_ && drawn_) {
    std::fputc('\n', stderr);
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace dqe
