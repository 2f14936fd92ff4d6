// Data masking for what the access log keeps of a request (--log-payloads): e-mail addresses
// become <email>, phone numbers <phone>, and every other digit '#', so that the log shows the
// shape of the traffic without the identifiers or numbers in it.
#pragma once

#include <string>
#include <string_view>

namespace dqe::service {

// An e-mail address: LOCAL@DOMAIN with LOCAL of letters, digits and ._%+- and DOMAIN of
// letters, digits, '-' and at least one inner '.'. A phone number: a run of digits, spaces
// and + ( ) - . that starts with a digit, '+' or '(', ends with a digit and holds 7 to 15
// digits. Other bytes (UTF-8 included) are kept.
std::string mask_payload(std::string_view text);

}  // namespace dqe::service
