#include "train/augment.h"

#include <utility>
#include <vector>

namespace dqe::training {

namespace {

std::vector<std::string> split_spaces(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    size_t j = i;
    while (j < text.size() && text[j] != ' ') ++j;
    if (j > i) out.push_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

size_t pick(std::mt19937_64& rng, size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); }

bool ascii_word(const std::string& w) {
  for (unsigned char c : w)
    if (c >= 0x80) return false;
  return true;
}

}  // namespace

Record augment_record(const Record& record, bool irrelevant, std::mt19937_64& rng, Augmentation* what) {
  Record out = record;
  std::vector<std::string> words = split_spaces(record.text);
  Augmentation done = Augmentation::kNone;
  const std::vector<std::string> query = split_spaces(record.query);
  if (irrelevant && !query.empty() && std::bernoulli_distribution(0.5)(rng)) {
    // One to three query words at random places.
    const size_t n = 1 + pick(rng, 3);
    for (size_t k = 0; k < n; ++k) words.insert(words.begin() + static_cast<std::ptrdiff_t>(pick(rng, words.size() + 1)), query[pick(rng, query.size())]);
    done = Augmentation::kQueryInsertion;
  } else if (!words.empty()) {
    const size_t i = pick(rng, words.size());
    std::string& w = words[i];
    if (std::bernoulli_distribution(0.5)(rng) && w.size() >= 3 && ascii_word(w)) {
      const size_t at = pick(rng, w.size() - 1);
      switch (pick(rng, 3)) {
        case 0: w.erase(at, 1); break;
        case 1: w.insert(at, 1, w[at]); break;
        default: std::swap(w[at], w[at + 1]); break;
      }
      done = Augmentation::kTypo;
    } else {
      words.insert(words.begin() + static_cast<std::ptrdiff_t>(i), w);
      done = Augmentation::kDuplicate;
    }
  }
  if (done != Augmentation::kNone) out.text = join(words);
  if (what) *what = done;
  return out;
}

}  // namespace dqe::training
