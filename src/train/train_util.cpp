#include "train/train_util.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "base/format.h"
#include "dqe/errors.h"
#include "dqe/vocab_builder.h"
#include "io/output.h"
#include "text/wordpiece_tokenizer.h"

namespace dqe::detail {

void apply_dropout_flag(const std::optional<double>& dropout, bool resume, SequenceModel& model, BertConfig& config,
                        spdlog::logger& log) {
  if (!dropout) return;
  if (resume) {
    if (*dropout != config.hidden_dropout_prob)
      throw ConfigError("--resume: --dropout " + format_significant(*dropout) + " differs from the run's " +
                        format_significant(config.hidden_dropout_prob) +
                        " (a resumed run continues as it was started; start a new run to change it)");
    return;
  }
  log.info("dropout {} (the --init model had {})", format_significant(*dropout), format_significant(config.hidden_dropout_prob));
  set_dropout(model, config, *dropout);
}

std::shared_ptr<const Tokenizer> new_tokenizer(const std::string& tokenizer_flag, bool lower_case, int64_t vocab_size,
                                               const std::vector<std::string>& texts, const std::string& source,
                                               spdlog::logger& log) {
  if (!tokenizer_flag.empty())
    return std::filesystem::is_directory(tokenizer_flag) ? load_tokenizer(tokenizer_flag, lower_case)
                                                         : load_tokenizer_file(tokenizer_flag, lower_case);
  VocabBuilderOptions vo;
  vo.vocab_size = vocab_size;
  vo.lower_case = lower_case;
  const auto t0 = std::chrono::steady_clock::now();
  auto tokenizer = std::make_shared<WordPieceTokenizer>(build_wordpiece_vocab(texts, vo), lower_case, "built vocab");
  log.info("built a WordPiece vocabulary of {} tokens from {} in {:.1f}s", tokenizer->vocab_size(), source,
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return tokenizer;
}


}  // namespace dqe::detail
