// The knob table: each setting of a command's configuration written once, beside its struct,
// with its name (the JSON key, and the long flag without "--"), help, --help group, check and
// whether --resume may change it. A config lists its knobs in a static visit_knobs(self,
// visitor) (every command's: TrainConfig, PretrainConfig, EvalConfig and GateConfig,
// ScoreConfig, ReportConfig, ExportConfig); from that one list the CLI binds its flags and
// --help (cli/knob_binding.h), and knobs_json(), check_knobs() and knobs_resume_may_change()
// below give to_json(), validate()'s per-knob checks and the resume rules. Checks that
// relate two knobs stay in validate().
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

namespace dqe {

// Bounds shared by the commands' knobs: beyond them a value is a mistake, and some would
// overflow (a batch of 2^63 - 1 examples plans zero steps).
constexpr int64_t kMaxBatchSize = int64_t{1} << 24;
constexpr int64_t kMaxGradAccum = int64_t{1} << 20;
constexpr int64_t kMaxEpochs = 1000000;
constexpr int64_t kMaxSequenceLength = int64_t{1} << 16;
constexpr int kMaxThreads = 1024;

struct Knob {
  Knob(std::string name, std::string help) : name(std::move(name)), help(std::move(help)) {}

  std::string name;   // "max-len": the JSON key, and the flag --max-len
  std::string help;   // one line of --help
  std::string group;  // --help's heading; empty: the command's own options
  // --resume may give it another value: it says where and how the run computes, not what
  // it learns (paths, threads, evaluation batch). Otherwise a resumed run refuses a change.
  bool may_change_on_resume = false;
  bool required = false;     // a string or list that must not be empty
  bool show_default = true;  // --help shows the default
  // --help's default for an optional knob, which holds none ("0.01": the default applied when
  // it is unset).
  std::string default_text;
  bool flag = false;         // a bool set by the flag alone (--resume), not --x true
  char delimiter = '\0';     // a list, also given as a,b,c
  std::vector<std::string> choices;  // a string that must be one of these
  // A number's bound (NaN must fail it), and the bound in words for the error:
  // "--lr must be a finite number > 0, got 0".
  std::function<bool(double)> ok;
  std::string rule;

  Knob& in(std::string heading) { group = std::move(heading); return *this; }
  Knob& changeable_on_resume() { may_change_on_resume = true; return *this; }
  Knob& mandatory() { required = true; return *this; }
  Knob& hide_default() { show_default = false; return *this; }
  Knob& unset_means(std::string text) { default_text = std::move(text); return *this; }
  Knob& as_flag() { flag = true; show_default = false; return *this; }
  Knob& list(char separator) { delimiter = separator; return *this; }
  Knob& one_of(std::vector<std::string> names) { choices = std::move(names); return *this; }
  Knob& check(std::function<bool(double)> bound, std::string words) {
    ok = std::move(bound);
    rule = std::move(words);
    return *this;
  }
};

// Bounds for Knob::check, each false for NaN.
namespace bound {
inline std::function<bool(double)> closed(double lo, double hi) { return [=](double x) { return x >= lo && x <= hi; }; }
inline std::function<bool(double)> closed_open(double lo, double hi) { return [=](double x) { return x >= lo && x < hi; }; }
inline std::function<bool(double)> open_closed(double lo, double hi) { return [=](double x) { return x > lo && x <= hi; }; }
inline std::function<bool(double)> open(double lo, double hi) { return [=](double x) { return x > lo && x < hi; }; }
inline std::function<bool(double)> at_least(double lo) { return [=](double x) { return x >= lo; }; }
inline std::function<bool(double)> finite() { return [](double x) { return std::isfinite(x); }; }
inline std::function<bool(double)> finite_above(double lo) { return [=](double x) { return x > lo && std::isfinite(x); }; }
inline std::function<bool(double)> finite_at_least(double lo) { return [=](double x) { return x >= lo && std::isfinite(x); }; }
}  // namespace bound

// A number as --help shows defaults (0.01, 600).
std::string knob_number_text(double value);

// Throw ConfigError naming --NAME when the value breaks the knob's check (required, choices,
// bound); an unset optional passes.
void check_knob(const Knob& knob, const std::string& value);
void check_knob(const Knob& knob, double value);
void check_knob(const Knob& knob, int64_t value);
void check_knob(const Knob& knob, const std::optional<double>& value);
void check_knob(const Knob& knob, const std::vector<std::string>& value);

namespace knob_visitors {

struct JsonWriter {
  nlohmann::ordered_json& json;
  template <typename T>
  void operator()(const Knob& knob, const T& value) {
    json[knob.name] = value;
  }
  void operator()(const Knob& knob, const std::optional<double>& value) {
    json[knob.name] = value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
  }
};

struct Checker {
  template <typename T>
  void operator()(const Knob& knob, const T& value) {
    if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, uint64_t>) {
      return;  // any value is one
    } else if constexpr (std::is_floating_point_v<T>) {
      check_knob(knob, static_cast<double>(value));
    } else if constexpr (std::is_integral_v<T>) {
      check_knob(knob, static_cast<int64_t>(value));
    } else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::optional<double>> ||
                         std::is_same_v<T, std::vector<std::string>>) {
      check_knob(knob, value);
    }
  }
};

struct ResumeRules {
  std::vector<std::string>& names;
  template <typename T>
  void operator()(const Knob& knob, const T&) {
    if (knob.may_change_on_resume) names.push_back(knob.name);
  }
};

struct Names {
  std::vector<std::string>& names;
  template <typename T>
  void operator()(const Knob& knob, const T&) {
    names.push_back(knob.name);
  }
};

}  // namespace knob_visitors

// Every knob's value under its name, in the table's order (an unset optional as null).
template <typename Config>
nlohmann::ordered_json knobs_json(const Config& config) {
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  Config::visit_knobs(config, knob_visitors::JsonWriter{json});
  return json;
}

// Each knob's own check (required, choices, bound), in the table's order.
template <typename Config>
void check_knobs(const Config& config) {
  Config::visit_knobs(config, knob_visitors::Checker{});
}

// The knobs that --resume may change.
template <typename Config>
std::vector<std::string> knobs_resume_may_change() {
  std::vector<std::string> names;
  const Config defaults{};
  Config::visit_knobs(defaults, knob_visitors::ResumeRules{names});
  return names;
}

template <typename Config>
std::vector<std::string> knob_names() {
  std::vector<std::string> names;
  const Config defaults{};
  Config::visit_knobs(defaults, knob_visitors::Names{names});
  return names;
}

// ---- Knobs that several configs share, under the same names ----

// The input fields (FieldMap) of every command that reads pairs.
template <typename Fields, typename Visitor>
void visit_field_knobs(Fields& f, Visitor&& v) {
  const char* g = "Input fields";
  v(Knob("query-field", "JSON field holding the query").in(g), f.query);
  v(Knob("text-fields", "JSON fields joined into the result text; the first is required").list(',').in(g), f.text);
  v(Knob("label-field", "JSON field holding the label").in(g), f.label);
  v(Knob("query-id-field", "JSON field grouping the results of one query (default: the query text)").in(g), f.query_id);
  v(Knob("id-field", "JSON field holding the record id").in(g), f.id);
  v(Knob("features-field", "JSON field holding an object of named numbers (optional per line)").in(g), f.features);
  v(Knob("attributes-field", "JSON field holding an object of named strings (optional per line)").in(g), f.attributes);
  v(Knob("image-field", "JSON field holding an image vector, an array of floats (optional per line)").in(g), f.image);
}

// --threads, --precision and --device of every command that runs a model (checked together by
// check_compute_flags, which resolves the device). They may change on --resume.
template <typename Config, typename Visitor>
void visit_compute_knobs(Config& c, Visitor&& v, const std::string& group = "") {
  v(Knob("threads",
         "Compute threads (0: the CPUs this process may use: its affinity mask, capped by its cgroup CPU quota)")
        .in(group)
        .changeable_on_resume(),
    c.threads);
  v(Knob("precision", "auto (bf16 autocast on a GPU, or on a CPU with avx512_bf16/AMX; else fp32), fp32 (exact) or bf16")
        .one_of({"auto", "fp32", "bf16"})
        .in(group)
        .changeable_on_resume(),
    c.precision);
  v(Knob("device", "auto (the GPU when dqe is built with CUDA and one is visible, else the CPU), cpu, cuda or cuda:N")
        .in(group)
        .changeable_on_resume(),
    c.device);
}

// Data parallelism (DistributedOptions): how the job's processes wait and talk, so both may
// change on --resume.
template <typename Options, typename Visitor>
void visit_distributed_knobs(Options& o, Visitor&& v) {
  const char* g = "Data parallelism (under torchrun, srun, or RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT)";
  v(Knob("dist-timeout",
         "Seconds the rendezvous and each all-reduce wait for the other processes; a dead or hung one stops the job "
         "within this time")
        .in(g)
        .check(bound::open_closed(0, 86400), "in (0, 86400] seconds")
        .changeable_on_resume(),
    o.timeout_s);
  v(Knob("bucket-mb",
         "Gradients are all-reduced in buckets of up to this many MiB (4 at least, to overlap the backward pass)")
        .in(g)
        .check(bound::open_closed(0, 4096), "in (0, 4096]")
        .changeable_on_resume(),
    o.bucket_mb);
}

// The model's shape from scratch (train and pretrain); `vocabulary_from` says what a new
// vocabulary is built from.
template <typename Config, typename Visitor>
void visit_model_shape_knobs(Config& c, Visitor&& v, const std::string& vocabulary_from) {
  const char* g = "Model shape (from scratch; ignored with --init)";
  v(Knob("layers", "Transformer layers").in(g).check(bound::closed(1, 1000), "between 1 and 1000"), c.layers);
  v(Knob("hidden", "Hidden size").in(g).check(bound::closed(1, 65536), "between 1 and 65536"), c.hidden);
  v(Knob("heads", "Attention heads").in(g), c.heads);  // a divisor of --hidden: checked by validate()
  v(Knob("intermediate", "Feed-forward size").in(g).check(bound::closed(1, 1000000), "between 1 and 1000000"),
    c.intermediate);
  v(Knob("vocab-size", "Size of the WordPiece vocabulary built from " + vocabulary_from)
        .in(g)
        .check(bound::closed(10, 10000000), "between 10 and 10000000"),
    c.vocab_size);
}

// The optimisation schedule of train and pretrain (their configs name it alike); `passes_over`
// and `batch_of` say what an epoch and a batch are made of. --epochs or --max-steps > 0 is
// checked by validate().
template <typename Config, typename Visitor>
void visit_schedule_knobs(Config& c, Visitor&& v, const std::string& passes_over, const std::string& batch_of) {
  const char* g = "Optimisation";
  v(Knob("epochs", "Passes over " + passes_over)
        .in(g)
        .check(bound::closed(0, static_cast<double>(kMaxEpochs)), "between 0 and " + std::to_string(kMaxEpochs)),
    c.epochs);
  v(Knob("max-steps", "Stop after N optimizer steps (0: use --epochs)").in(g).check(bound::closed(0, 1e12), "between 0 and 10^12"),
    c.max_steps);
  v(Knob("batch-size", batch_of + " per batch")
        .in(g)
        .check(bound::closed(1, static_cast<double>(kMaxBatchSize)), "between 1 and " + std::to_string(kMaxBatchSize)),
    c.batch_size);
  v(Knob("grad-accum", "Batches per optimizer step")
        .in(g)
        .check(bound::closed(1, static_cast<double>(kMaxGradAccum)), "between 1 and " + std::to_string(kMaxGradAccum)),
    c.grad_accum);
  v(Knob("lr", "Peak learning rate, reached after warmup").in(g).check(bound::finite_above(0), "a finite number > 0"), c.lr);
  v(Knob("warmup-ratio", "Fraction of steps with linear warmup").in(g).check(bound::closed_open(0, 1), "in [0, 1)"),
    c.warmup_ratio);
  v(Knob("weight-decay", "AdamW weight decay (not on biases and LayerNorm)")
        .in(g)
        .check(bound::finite_at_least(0), "a finite number >= 0"),
    c.weight_decay);
  v(Knob("max-grad-norm", "Clip gradients to this L2 norm (0: off)")
        .in(g)
        .check(bound::finite_at_least(0), "a finite number >= 0 (0: no clipping)"),
    c.max_grad_norm);
}

}  // namespace dqe
