#include "cli/knob_binding.h"

#include <charconv>
#include <cstdint>
#include <string>

namespace dqe::cli {

void KnobBinder::refuse_empty(CLI::Option* option) {
  const auto not_empty = [](const std::string& value) {
    return value.empty() ? std::string("the value is empty (an unset shell variable?)") : std::string();
  };
  option->check(CLI::Validator(not_empty, /*validator_desc=*/"", "not empty"));  // no words in --help
}

void KnobBinder::operator()(const Knob& knob, bool& member) {
  if (knob.flag) {
    finish(knob, cmd_.add_flag("--" + knob.name, member, knob.help));
  } else {
    CLI::Option* option = cmd_.add_option("--" + knob.name, member, knob.help);
    refuse_empty(option);
    finish(knob, option);
  }
}

void KnobBinder::operator()(const Knob& knob, uint64_t& member) {
  CLI::Option* option = cmd_.add_option("--" + knob.name, member, knob.help);
  // Whole digits that fit: CLI11's reading saturates 99999999999999999999 to 2^64 - 1.
  const auto fits = [](const std::string& value) {
    uint64_t parsed = 0;
    const char* end = value.data() + value.size();
    const auto [stop, error] = std::from_chars(value.data(), end, parsed);
    if (error == std::errc::result_out_of_range)
      return std::string("out of range: at most 18446744073709551615, got ") + value;
    if (error != std::errc() || stop != end || value.empty())
      return std::string("must be a whole number >= 0, got ") + value;
    return std::string();
  };
  option->check(CLI::Validator(fits, /*validator_desc=*/"", "whole number in range"));
  refuse_empty(option);
  finish(knob, option);
}

void KnobBinder::operator()(const Knob& knob, std::optional<double>& member) {
  CLI::Option* option = cmd_.add_option_function<double>(
      "--" + knob.name, [&member](const double& value) { member = value; }, knob.help);
  if (!knob.default_text.empty()) option->default_str(knob.default_text);
  refuse_empty(option);
  finish(knob, option);
}

void KnobBinder::finish(const Knob& knob, CLI::Option* option) {
  if (knob.show_default && !knob.flag) option->capture_default_str();
  if (knob.required) option->required();
  if (!knob.choices.empty()) option->check(CLI::IsMember(knob.choices));
  if (knob.delimiter != '\0') option->delimiter(knob.delimiter);
  if (!knob.group.empty()) option->group(knob.group);
}

}  // namespace dqe::cli
