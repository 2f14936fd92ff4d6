#include "serve/mask.h"

#include <cctype>

namespace dqe::service {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 && static_cast<unsigned char>(c) < 128; }
bool is_local(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'; }
bool is_domain(char c) { return is_alnum(c) || c == '.' || c == '-'; }
bool is_phone_char(char c) { return is_digit(c) || c == ' ' || c == '+' || c == '(' || c == ')' || c == '-' || c == '.'; }

// The end of an e-mail address whose '@' is at `at` and whose local part starts at `begin`,
// or 0 when there is none.
size_t email_end(std::string_view s, size_t begin, size_t at) {
  if (begin == at) return 0;
  size_t end = at + 1;
  while (end < s.size() && is_domain(s[end])) ++end;
  while (end > at + 1 && (s[end - 1] == '.' || s[end - 1] == '-')) --end;  // "a@b.com." ends a sentence
  const std::string_view domain = s.substr(at + 1, end - at - 1);
  const size_t dot = domain.find('.');
  if (domain.empty() || dot == std::string_view::npos || dot == 0) return 0;
  return end;
}

// The end of a phone number starting at i, or 0.
size_t phone_end(std::string_view s, size_t i) {
  if (!(is_digit(s[i]) || s[i] == '+' || s[i] == '(')) return 0;
  size_t digits = 0, end = i, last_digit_end = 0;
  for (; end < s.size() && is_phone_char(s[end]); ++end)
    if (is_digit(s[end])) {
      ++digits;
      last_digit_end = end + 1;
      if (digits > 15) return 0;
    }
  return digits >= 7 ? last_digit_end : 0;
}

}  // namespace

std::string mask_payload(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    // An address: its local part is the local-part characters just before an '@' ahead.
    if (is_local(s[i]) && (i == 0 || !is_local(s[i - 1]))) {
      size_t at = i;
      while (at < s.size() && is_local(s[at])) ++at;
      if (at < s.size() && s[at] == '@') {
        if (const size_t end = email_end(s, i, at)) {
          out += "<email>";
          i = end;
          continue;
        }
      }
    }
    if (i == 0 || !is_digit(s[i - 1])) {
      if (const size_t end = phone_end(s, i)) {
        out += "<phone>";
        i = end;
        continue;
      }
    }
    out += is_digit(s[i]) ? '#' : s[i];
    ++i;
  }
  return out;
}

}  // namespace dqe::service
