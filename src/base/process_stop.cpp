#include "base/process_stop.h"

#include <csignal>

#include "dqe/errors.h"

namespace dqe {
namespace {

std::atomic<const std::atomic<int>*> g_signal_number{nullptr};

}  // namespace

void register_process_stop(const std::atomic<int>* signal_number) { g_signal_number.store(signal_number); }

StopToken process_stop() { return StopToken(g_signal_number.load()); }

void throw_interrupted(int signal_number, const std::string& what) {
  throw Interrupted(signal_number, std::string(signal_number == SIGTERM ? "terminated" : "interrupted") + " (" + what + ")");
}

}  // namespace dqe
