// 64-bit FNV-1a: fingerprints of training data and content hashes of weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace dqe::detail {

class Fnv1a {
 public:
  void add_bytes(const void* data, size_t size);
  // A text and a separator, so that ("ab", "c") and ("a", "bc") differ.
  void add(const std::string& text);
  // A double's bytes, as add(text) adds them.
  void add(double value);
  uint64_t value() const { return hash_; }
  // 16 hexadecimal digits.
  std::string hex() const;

 private:
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

}  // namespace dqe::detail
