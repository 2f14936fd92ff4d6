// Work on a data set divided among a data-parallel job's processes: each process tokenises
// (or predicts) its even share of the rows, RunContext::share_of, and the job gathers the
// results, so that every process ends with all of them having done 1/W of the work. The
// results equal one process's: rows are independent and the shares are joined in order. In a
// single process each function does every row itself. In a job each is a collective: every
// process calls it at the same point with the same n.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "data/featurizer.h"
#include "dqe/run_context.h"
#include "dqe/tokenizer.h"

namespace dqe {

// Byte forms of encodings and examples for the exchange between the processes of one job
// (machines of one byte order). unpack_* throw Error on bytes that pack_* did not write.
std::string pack_encodings(const std::vector<Encoding>& encodings);
std::vector<Encoding> unpack_encodings(std::string_view bytes);
std::string pack_examples(const std::vector<Example>& examples);
std::vector<Example> unpack_examples(std::string_view bytes);

// encode(first, last) of this process's share of rows [0, n), joined with the other
// processes' results in rank order (encode may drop rows, e.g. empty lines). An error in any
// process's share is thrown in every process, as the same type with the same message, so
// that none waits for the others until --dist-timeout.
std::vector<Encoding> encodings_in_shares(const RunContext& ctx, size_t n,
                                          const std::function<std::vector<Encoding>(size_t, size_t)>& encode);
// Every record encoded, this process encoding its share on ctx.threads threads.
std::vector<Example> examples_in_shares(const RunContext& ctx, const Featurizer& featurizer,
                                        const std::vector<Record>& records);

// The [n, outputs] float32 logits of n rows: predict(first, last) gives this process's share,
// [last - first, outputs], and the job sums the shares (zeros elsewhere, exact in float64).
torch::Tensor logits_in_shares(const RunContext& ctx, size_t n, int64_t outputs,
                               const std::function<torch::Tensor(size_t, size_t)>& predict);

}  // namespace dqe
