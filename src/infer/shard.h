// Deterministic shards of a JSONL input, for `dqe score --shard K/N`: N jobs (a Slurm array,
// a shell loop, workers of a cluster) that read the same file each score the lines of their
// shard, and the shards' outputs together are the unsharded output.
#pragma once

#include <cstdint>
#include <string>

#include "dqe/jsonl_reader.h"

namespace dqe {

struct Shard {
  int64_t index = 0;  // K, 0-based
  int64_t count = 1;  // N
  // Empty: line number L (1-based) is in shard (L - 1) mod N. Otherwise this field's value
  // decides: FNV-1a 64 of its text (a string's characters, any other value's JSON) mod N, so
  // that every line with the same value (a query's results) lands in the same shard.
  std::string key;

  bool all() const { return count == 1; }
  // "2/8" for logs.
  std::string describe() const;
};

// Parses --shard "K/N" (0 <= K < N); an empty text is the whole input. Throws ConfigError
// naming --shard (or --shard-key without --shard).
Shard parse_shard(const std::string& text, const std::string& key);

// FNV-1a 64 of bytes (offset basis 14695981039346656037, prime 1099511628211).
uint64_t fnv1a64(const std::string& bytes);

// Whether the record read from input is in the shard. Needs Record::raw for a key; throws
// DataError "input:line: ..." when the line lacks the key field.
bool in_shard(const Shard& shard, const Record& record, const std::string& input);

}  // namespace dqe
