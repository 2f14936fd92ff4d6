#include "data/mlm.h"

#include <algorithm>
#include <cmath>

#include "dqe/errors.h"

namespace dqe {

MaskingVocab MaskingVocab::from_tokenizer(const Tokenizer& tokenizer) {
  MaskingVocab v;
  v.mask_id = tokenizer.mask_id();
  if (v.mask_id < 0) throw ModelError("the tokenizer has no [MASK] token, which masked-language-model pretraining needs");
  v.vocab_size = tokenizer.vocab_size();
  v.continues_word.assign(static_cast<size_t>(v.vocab_size), 0);
  v.special.assign(static_cast<size_t>(v.vocab_size), 0);
  const bool sentencepiece = tokenizer.kind() == "sentencepiece";
  for (int64_t id = 0; id < v.vocab_size; ++id) {
    const std::string piece = tokenizer.id_to_piece(id);
    if (sentencepiece) v.continues_word[id] = piece.rfind("\xe2\x96\x81", 0) != 0;  // no leading U+2581
    else v.continues_word[id] = piece.size() > 2 && piece.compare(0, 2, "##") == 0;
  }
  for (int64_t id : {tokenizer.cls_id(), tokenizer.sep_id(), tokenizer.pad_id(), tokenizer.mask_id()})
    if (id >= 0 && id < v.vocab_size) v.special[id] = 1;
  return v;
}

MaskedSequence mask_sequence(const std::vector<int64_t>& ids, const MaskingVocab& vocab, const MaskingOptions& options,
                             std::mt19937_64& rng) {
  MaskedSequence out{ids, std::vector<int64_t>(ids.size(), kIgnoreLabel)};
  auto is_special = [&](int64_t id) { return id < 0 || id >= vocab.vocab_size || vocab.special[id]; };

  // Units to choose from: single tokens, or the token spans of whole words.
  std::vector<std::pair<size_t, size_t>> units;  // [begin, end)
  size_t maskable = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (is_special(ids[i])) continue;
    ++maskable;
    const bool joins = options.whole_word && !units.empty() && units.back().second == i && vocab.continues_word[ids[i]];
    if (joins) units.back().second = i + 1;
    else units.emplace_back(i, i + 1);
  }
  if (units.empty()) return out;
  const size_t target = std::max<size_t>(1, static_cast<size_t>(std::lround(options.mask_prob * static_cast<double>(maskable))));
  std::shuffle(units.begin(), units.end(), rng);

  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::uniform_int_distribution<int64_t> any_token(0, vocab.vocab_size - 1);
  const double random_fraction = (1.0 - options.mask_token_fraction) / 2.0;
  size_t chosen = 0;
  for (const auto& [begin, end] : units) {
    if (chosen >= target) break;
    // A whole word that would overshoot the target by more than it helps is skipped.
    if (chosen > 0 && chosen + (end - begin) > target + (end - begin) / 2) continue;
    for (size_t i = begin; i < end; ++i) {
      out.labels[i] = ids[i];
      const double u = coin(rng);
      if (u < options.mask_token_fraction) {
        out.ids[i] = vocab.mask_id;
      } else if (u < options.mask_token_fraction + random_fraction) {
        int64_t r = any_token(rng);
        while (vocab.special[r]) r = any_token(rng);
        out.ids[i] = r;
      }
      ++chosen;
    }
  }
  return out;
}

}  // namespace dqe
