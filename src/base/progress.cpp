#include "base/progress.h"

#include <unistd.h>

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
  const auto now = std::chrono::steady_clock::now();
  if (start_done_ < 0) {
    start_done_ = done;
    start_ = now;
  }
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  const bool last = total_ > 0 && done >= total_;
  if (since_draw < (tty_ ? kDrawEverySeconds : kLogEverySeconds) && !last) return;
  last_draw_ = now;

  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done - start_done_) / elapsed : 0;
  std::string line = unit_ + " " + std::to_string(done);
  if (total_ > 0) line += "/" + std::to_string(total_);
  if (!extra.empty()) line += " " + extra;
  if (total_ > 0 && rate > 0) line += " ETA " + format_duration(static_cast<double>(total_ - done) / rate);

  if (tty_) {
    std::string bar;
    if (total_ > 0) {
      const int width = 20;
      const int filled = static_cast<int>(width * std::min<double>(1.0, static_cast<double>(done) / total_));
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
