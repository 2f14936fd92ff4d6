// The process's stop request, for a wait deep in the library that no RunContext reaches (the
// open of an output FIFO that has no reader yet). The command line registers the flag its
// SIGINT/SIGTERM handler sets; where none is registered the token never asks to stop.
#pragma once

#include <atomic>
#include <string>

#include "dqe/run_context.h"

namespace dqe {

void register_process_stop(const std::atomic<int>* signal_number);
StopToken process_stop();

// Throws Interrupted worded as StopToken::check words it: "terminated (what)" for SIGTERM,
// "interrupted (what)" otherwise. For a stop caught and told again with what it left behind.
[[noreturn]] void throw_interrupted(int signal_number, const std::string& what);

}  // namespace dqe
