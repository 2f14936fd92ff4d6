#include "base/hash.h"

#include <cstdio>
#include <cstring>

namespace dqe::detail {

void Fnv1a::add_bytes(const void* data, size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash_ ^= bytes[i];
    hash_ *= 0x100000001b3ULL;
  }
}

void Fnv1a::add(const std::string& text) {
  add_bytes(text.data(), text.size());
  const unsigned char separator = 0xff;
  add_bytes(&separator, 1);
}

void Fnv1a::add(double value) {
  char bytes[sizeof value];
  std::memcpy(bytes, &value, sizeof value);
  add(std::string(bytes, sizeof value));
}

std::string Fnv1a::hex() const {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash_));
  return buf;
}

}  // namespace dqe::detail
