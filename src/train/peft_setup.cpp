#include "train/peft_setup.h"

#include <algorithm>

#include "base/format.h"
#include "dqe/errors.h"
#include "model/peft/bottleneck.h"
#include "model/peft/lora.h"
#include "model/peft/prefix.h"

namespace dqe {
namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

// The LoRA updates --peft lora (r --lora-rank) or adalora (r --adalora-init-r) asks for on a
// base of this shape: --lora-targets, --lora-alpha, --lora-dropout at rank r. Throws
// ConfigError naming `flag` when r exceeds a module's smaller dimension, and --lora-targets
// when a target selects no Linear of this encoder.
std::unique_ptr<LoraSpec> lora_of_flags(const TrainConfig& cfg, const BertConfig& base, int64_t r,
                                        const std::string& flag) {
  auto lora = std::make_unique<LoraSpec>();
  lora->r = r;
  lora->alpha = cfg.lora_alpha;
  lora->dropout = cfg.lora_dropout;
  lora->modules = lora_modules(cfg.lora_targets, base.num_hidden_layers);
  lora->target_modules = peft_target_modules(cfg.lora_targets, lora->modules);
  for (const auto& module : lora->modules) {
    const auto [out, in] = linear_shape(base, module);
    if (lora->r > std::min(out, in))
      throw ConfigError(flag + " " + std::to_string(lora->r) + " exceeds " + std::to_string(std::min(out, in)) +
                        ", the smaller dimension of " + module + " [" + std::to_string(out) + " x " + std::to_string(in) +
                        "]");
  }
  return lora;
}

AdapterSpecPtr lora_from_flags(const TrainConfig& cfg, const BertConfig& base) {
  return std::unique_ptr<AdapterSpec>(lora_of_flags(cfg, base, cfg.lora_rank, "--lora-rank"));
}

// The AdaLoRA updates --peft adalora asks for: LoRA's targets, alpha and dropout, at
// --adalora-init-r (bounded by each module's smaller dimension). The schedule's steps are
// filled in once the run's length is known.
AdapterSpecPtr adalora_from_flags(const TrainConfig& cfg, const BertConfig& base) {
  std::unique_ptr<LoraSpec> lora = lora_of_flags(cfg, base, cfg.adalora_init_r, "--adalora-init-r");
  AdaLoraSpec& a = lora->adalora.emplace();
  a.init_r = cfg.adalora_init_r;
  a.target_r = cfg.adalora_target_r;
  a.delta_t = cfg.adalora_delta_t;
  a.beta1 = cfg.adalora_beta1;
  a.beta2 = cfg.adalora_beta2;
  a.orth_reg_weight = cfg.adalora_orth_reg_weight;
  return std::unique_ptr<AdapterSpec>(std::move(lora));
}

// The bottleneck adapters --peft adapter asks for on a base of this shape. Throws ConfigError
// naming --adapter-size when it exceeds the base's hidden size.
AdapterSpecPtr bottleneck_from_flags(const TrainConfig& cfg, const BertConfig& base) {
  check_adapter_size(cfg.adapter_size, base.hidden_size);
  auto bottleneck = std::make_unique<BottleneckSpec>();
  bottleneck->size = cfg.adapter_size;
  return std::unique_ptr<AdapterSpec>(std::move(bottleneck));
}

// The prefix --peft prefix asks for on a base of this shape. Throws ConfigError naming
// --prefix-tokens when it leaves the text fewer than 3 positions.
AdapterSpecPtr prefix_from_flags(const TrainConfig& cfg, const BertConfig& base) {
  check_prefix_tokens(cfg.prefix_tokens, base);
  auto prefix = std::make_unique<PrefixSpec>();
  prefix->num_virtual_tokens = cfg.prefix_tokens;
  prefix->projection = cfg.prefix_projection;
  return std::unique_ptr<AdapterSpec>(std::move(prefix));
}

void check_continued_lora(const TrainConfig& cfg, const LoraSpec& flags, const LoraSpec& adapter) {
  const std::string hint = " (an --init adapter continues training its own updates; give its values)";
  if (flags.r != adapter.r)
    throw ConfigError("--lora-rank " + std::to_string(flags.r) + " differs from --init " + cfg.init + "'s r " +
                      std::to_string(adapter.r) + hint);
  if (flags.scaling() != adapter.scaling())
    throw ConfigError("--lora-alpha " + format_significant(flags.alpha, 6) + " differs from --init " + cfg.init +
                      "'s lora_alpha " + format_significant(adapter.alpha, 6) +
                      (adapter.rslora ? " (with rsLoRA's scaling)" : "") + hint);
  if (flags.modules != adapter.modules)
    throw ConfigError("--lora-targets " + joined(cfg.lora_targets) + " select other Linears than --init " + cfg.init +
                      "'s adapter has (" + std::to_string(adapter.modules.size()) + " modules: " +
                      joined(adapter.target_modules) + ")" + hint);
}

void check_continued_bottleneck(const TrainConfig& cfg, const BottleneckSpec& flags, const BottleneckSpec& adapter) {
  if (flags.size != adapter.size)
    throw ConfigError("--adapter-size " + std::to_string(flags.size) + " differs from --init " + cfg.init +
                      "'s adapter_size " + std::to_string(adapter.size) +
                      " (an --init adapter continues training its own adapters; give its values)");
}

void check_continued_prefix(const TrainConfig& cfg, const PrefixSpec& flags, const PrefixSpec& adapter) {
  const std::string hint = " (an --init prefix continues training its own table; give its values)";
  if (flags.num_virtual_tokens != adapter.num_virtual_tokens)
    throw ConfigError("--prefix-tokens " + std::to_string(flags.num_virtual_tokens) + " differs from --init " + cfg.init +
                      "'s num_virtual_tokens " + std::to_string(adapter.num_virtual_tokens) + hint);
  if (flags.projection != adapter.projection)
    throw ConfigError(std::string(flags.projection ? "--prefix-projection" : "--peft prefix without --prefix-projection") +
                      ": --init " + cfg.init + "'s prefix " +
                      (adapter.projection ? "trains through PEFT's reparametrisation" : "holds its table alone") + hint);
}

// Each kind's flags. continuable: a run of that kind can continue an --init adapter of it
// (AdaLoRA's budget schedule belongs to the run that started it).
struct KindFlags {
  const char* kind;
  AdapterSpecPtr (*from_flags)(const TrainConfig&, const BertConfig&);
  bool continuable;
};
const KindFlags kKindFlags[] = {
    {"lora", lora_from_flags, true},
    {"adalora", adalora_from_flags, false},
    {"adapter", bottleneck_from_flags, true},
    {"prefix", prefix_from_flags, true},
};

const KindFlags& flags_of(const std::string& kind) {
  for (const auto& k : kKindFlags)
    if (kind == k.kind) return k;
  throw ConfigError("--peft " + kind + " is not a kind dqe trains (a bug: its flags are not mapped)");
}

// "a LoRA adapter", "an AdaLoRA adapter", "a bottleneck adapter".
std::string kind_text(const AdapterSpec& spec) {
  if (spec.kind() == "adalora") return "an AdaLoRA adapter";
  if (spec.kind() == "lora") return "a LoRA adapter";
  if (spec.kind() == "adapter") return "a bottleneck adapter";
  if (spec.kind() == "prefix") return "a prefix-tuning adapter";
  return "a " + spec.peft_type() + " adapter";
}

}  // namespace

PeftPlan plan_peft(const TrainConfig& cfg, const ModelSpec& init) {
  PeftPlan plan;
  const AdapterSpec* init_adapter = init.adapter.get();
  if (cfg.peft == "none") {
    if (!init_adapter) return plan;
    if (!init_adapter->why_not_mergeable().empty())
      throw ConfigError("--init " + cfg.init + " is " + kind_text(*init_adapter) +
                        ", which cannot be merged into its base for full fine-tuning (it " + init_adapter->why_not_mergeable() +
                        "); continue it with --peft " + init_adapter->kind());
    plan.merge_init = true;  // full fine-tuning of the adapted model
    return plan;
  }
  const KindFlags& run = flags_of(cfg.peft);
  if (init_adapter && init_adapter->kind() != cfg.peft) {
    const bool continuable = flags_of(init_adapter->kind()).continuable && run.continuable;
    std::string what;
    if (!init_adapter->why_not_mergeable().empty()) what = "; continue it with --peft " + init_adapter->kind();
    else if (continuable) what = "; merge it first (dqe export --merge) or continue it with --peft " + init_adapter->kind();
    else what = ", which this run cannot continue; start from its base, or from the adapter merged (dqe export --merge)";
    throw ConfigError("--peft " + cfg.peft + ": --init " + cfg.init + " is " + kind_text(*init_adapter) + what);
  }
  if (init_adapter && !run.continuable)
    throw ConfigError("--peft " + cfg.peft + ": --init " + cfg.init + " is " + kind_text(*init_adapter) +
                      ", which this run cannot continue; start from its base, or from the adapter merged "
                      "(dqe export --merge)");
  plan.adapter = run.from_flags(cfg, init.bert);
  return plan;
}

void check_continued_adapter(const TrainConfig& cfg, const AdapterSpec& flags, const AdapterSpec& adapter) {
  if (const auto* f = dynamic_cast<const LoraSpec*>(&flags))
    if (const auto* a = dynamic_cast<const LoraSpec*>(&adapter)) return check_continued_lora(cfg, *f, *a);
  if (const auto* f = dynamic_cast<const BottleneckSpec*>(&flags))
    if (const auto* a = dynamic_cast<const BottleneckSpec*>(&adapter)) return check_continued_bottleneck(cfg, *f, *a);
  if (const auto* f = dynamic_cast<const PrefixSpec*>(&flags))
    if (const auto* a = dynamic_cast<const PrefixSpec*>(&adapter)) return check_continued_prefix(cfg, *f, *a);
}

}  // namespace dqe
