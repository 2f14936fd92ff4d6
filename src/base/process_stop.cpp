#include "base/process_stop.h"

namespace dqe {
namespace {

std::atomic<const std::atomic<int>*> g_signal_number{nullptr};

}  // namespace

void register_process_stop(const std::atomic<int>* signal_number) { g_signal_number.store(signal_number); }

StopToken process_stop() { return StopToken(g_signal_number.load()); }

}  // namespace dqe
