#include "deploy/deploy.h"

#include "dqe/errors.h"

namespace dqe {

std::string hf_incompatibility(const LoadedModel& model) { return hf_incompatibility(model.spec, *model.featurizer); }

std::string hf_incompatibility(const ModelSpec& spec, const Featurizer& featurizer) {
  const TaskSpec& task = spec.task;
  if (task.match_types)
    return "its inputs mark shared words with token types 2 and 3, which BertTokenizer never produces; train it with "
           "--match-types off";
  if (task.lexical_features || !featurizer.side_inputs().empty())
    return "it adds side inputs (lexical features) to its logits, which BertForSequenceClassification has no place "
           "for; train it without --lexical-features";
  if (spec.adapter && !spec.adapter->why_not_mergeable().empty())
    return "it " + spec.adapter->why_not_mergeable() + ", and BertForSequenceClassification has no place for them; "
           "train it with --peft lora or in full";
  if (featurizer.tokenizer().kind() != "wordpiece")
    return "its tokenizer is " + featurizer.tokenizer().kind() +
           ", which BertTokenizer cannot read; train it with a WordPiece vocab.txt (--tokenizer vocab.txt, or the "
           "vocabulary dqe builds)";
  return "";
}

}  // namespace dqe
