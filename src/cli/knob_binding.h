// The CLI side of the knob table (dqe/knobs.h): a visitor that binds each knob to a flag of a
// command, with its help, --help group and default, its choices and list delimiter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include <CLI/CLI.hpp>

#include "dqe/knobs.h"

namespace dqe::cli {

class KnobBinder {
 public:
  explicit KnobBinder(CLI::App& cmd) : cmd_(cmd) {}

  template <typename T>
  void operator()(const Knob& knob, T& member) {
    CLI::Option* option = cmd_.add_option("--" + knob.name, member, knob.help);
    // A number given as "" would be read as 0, and a string whose default is empty as unset
    // (--shard "": every line), where an unset shell variable is the likelier cause. A string
    // with a default ("--features-field ''") reads "" as its own value.
    if constexpr (std::is_arithmetic_v<T>) refuse_empty(option);
    if constexpr (std::is_same_v<T, std::string>)
      if (member.empty()) refuse_empty(option);
    finish(knob, option);
  }
  // A flag (--resume) or a value (--lower-case false), as the knob says.
  void operator()(const Knob& knob, bool& member);
  // Unsigned: a negative value would wrap, so it is refused.
  void operator()(const Knob& knob, uint64_t& member);
  // Set only when given (or in a --config file), so that unset keeps its meaning.
  void operator()(const Knob& knob, std::optional<double>& member);

 private:
  void finish(const Knob& knob, CLI::Option* option);
  // An empty value ("--threshold ''") is refused in one line, not read as 0 or as unset.
  static void refuse_empty(CLI::Option* option);
  CLI::App& cmd_;
};

// Binds every knob of Config (its visit_knobs) to cmd.
template <typename Config>
void bind_knobs(CLI::App& cmd, Config& config) {
  Config::visit_knobs(config, KnobBinder(cmd));
}

}  // namespace dqe::cli
