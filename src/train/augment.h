// Training-time text noise that mirrors the attacks a quality model meets (--augment): typos,
// duplicated words, and the query's words inserted into the titles of below-average results
// with their label kept, so that the model learns that stuffing does not make a result relevant.
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "dqe/jsonl_reader.h"

namespace dqe::training {

// What one augmentation did (tests and logs).
enum class Augmentation { kNone, kTypo, kDuplicate, kQueryInsertion };

// A copy of the record with one noise applied to its text, drawn from rng: query-word insertion
// when `irrelevant` (half of the time), otherwise a typo (a letter deleted, doubled or two
// swapped in one word) or a duplicated word. A text without words comes back unchanged.
Record augment_record(const Record& record, bool irrelevant, std::mt19937_64& rng, Augmentation* what = nullptr);

}  // namespace dqe::training
