#include "model/peft/adalora.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <tuple>

#include "dqe/errors.h"
#include "io/safetensors.h"
#include "model/peft/adapter.h"
#include "model/peft/lora.h"

namespace dqe {
namespace fs = std::filesystem;

namespace {

// The three parameters of an update, in PEFT's registration order, with their names.
std::vector<std::pair<std::string, torch::Tensor>> svd_parameters(const std::string& module, const LoraLinear& update) {
  return {{module + ".lora_E", update->svd_E}, {module + ".lora_A", update->svd_A}, {module + ".lora_B", update->svd_B}};
}

int64_t kept(const std::vector<bool>& keep) { return std::count(keep.begin(), keep.end(), true); }

torch::Tensor kept_indices(const std::vector<bool>& keep, const torch::Device& device) {
  std::vector<int64_t> idx;
  for (size_t i = 0; i < keep.size(); ++i)
    if (keep[i]) idx.push_back(static_cast<int64_t>(i));
  return torch::tensor(idx, torch::kInt64).to(device);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

AdaLoraBudget adalora_budget(const AdaLoraSpec& spec, int64_t init_budget, int64_t target_budget, int64_t step) {
  if (step <= spec.tinit) return {init_budget, false};
  if (step > spec.total_step - spec.tfinal) return {target_budget, true};
  const double span = static_cast<double>(spec.total_step - spec.tfinal - spec.tinit);
  const double mul = 1.0 - static_cast<double>(step - spec.tinit) / span;
  const auto budget =
      static_cast<int64_t>(static_cast<double>(init_budget - target_budget) * (mul * mul * mul) + static_cast<double>(target_budget));
  return {budget, step % spec.delta_t == 0};
}

torch::Tensor adalora_orth_loss(SequenceModel& model) {
  torch::Tensor sum;
  int64_t count = 0;
  if (LoraAdapterImpl* lora = lora_adapter(*model)) {
    for (auto& [name, update] : lora->updates) {
      if (!update->is_adalora()) continue;
      for (const torch::Tensor& cov : {torch::matmul(update->svd_A, update->svd_A.t()),
                                       torch::matmul(update->svd_B.t(), update->svd_B)}) {
        const torch::Tensor term = (cov - torch::eye(cov.size(0), cov.options())).norm();
        sum = sum.defined() ? sum + term : term;
        ++count;
      }
    }
  }
  if (count == 0) return torch::zeros({}, torch::kFloat32);
  return sum / static_cast<double>(count);
}

std::vector<std::pair<std::string, torch::Tensor>> resize_by_rank_pattern(
    std::vector<std::pair<std::string, torch::Tensor>> tensors, const AdaLoraSpec& spec) {
  for (auto& [name, t] : tensors) {
    for (const char* part : {".lora_A", ".lora_E", ".lora_B"}) {
      if (!ends_with(name, part)) continue;
      std::string module = name.substr(0, name.size() - std::string(part).size());
      if (module.rfind(kPeftPrefix, 0) == 0) module = module.substr(std::string(kPeftPrefix).size());
      const auto it = spec.rank_pattern.find(module);
      if (it == spec.rank_pattern.end() || kept(it->second) == static_cast<int64_t>(it->second.size())) continue;
      const int64_t dim = std::string(part) == ".lora_B" ? 1 : 0;
      t = t.detach().index_select(dim, kept_indices(it->second, t.device()));
    }
  }
  return tensors;
}

void expand_by_rank_pattern(std::map<std::string, torch::Tensor>& tensors, const AdaLoraSpec& spec,
                            const std::string& origin) {
  for (const auto& [module, keep] : spec.rank_pattern) {
    const int64_t rank = kept(keep);
    const std::string update_prefix = std::string(kPeftPrefix) + module + ".lora_";  // a lambda cannot capture module
    if (std::none_of(tensors.begin(), tensors.end(),
                     [&](const auto& t) { return t.first.rfind(update_prefix, 0) == 0; }))
      throw ModelError(origin + ": rank_pattern names " + module + ", which the file holds no update of (a " +
                       kAdapterConfigFile + " of another adapter?)");
    for (const char* part : {".lora_A", ".lora_E", ".lora_B"}) {
      const std::string name = std::string(kPeftPrefix) + module + part;
      auto it = tensors.find(name);
      if (it == tensors.end()) continue;  // reported as missing when the model is loaded
      const int64_t dim = std::string(part) == ".lora_B" ? 1 : 0;
      const torch::Tensor& t = it->second;
      if (t.dim() != 2 || t.size(dim) != rank)
        throw ModelError(origin + ": tensor \"" + name + "\" does not have the rank " + std::to_string(rank) +
                         " that rank_pattern keeps for " + module);
      std::vector<int64_t> shape = t.sizes().vec();
      shape[static_cast<size_t>(dim)] = static_cast<int64_t>(keep.size());
      it->second = torch::zeros(shape, t.options()).index_copy(dim, kept_indices(keep, t.device()), t);
    }
  }
}

RankAllocator::RankAllocator(SequenceModel model, AdaLoraSpec& spec) : model_(std::move(model)), spec_(spec) {
  LoraAdapterImpl* lora = lora_adapter(*model_);
  if (!lora) throw ModelError("AdaLoRA: the model has no LoRA adapter (a bug)");
  for (auto& [name, update] : lora->updates) {
    if (!update->is_adalora()) throw ModelError("AdaLoRA: " + name + " is not an AdaLoRA update (a bug)");
    entries_.push_back({name, update});
    init_budget_ += update->svd_A.size(0);
    for (const auto& [pname, p] : svd_parameters(name, update)) {
      exp_avg_ipt_[pname] = torch::zeros_like(p);
      exp_avg_unc_[pname] = torch::zeros_like(p);
    }
  }
  target_budget_ = spec_.target_r * static_cast<int64_t>(entries_.size());
}

void RankAllocator::update_importance() {
  torch::NoGradGuard no_grad;
  for (auto& e : entries_) {
    for (const auto& [name, p] : svd_parameters(e.module, e.update)) {
      const torch::Tensor grad = p.grad().defined() ? p.grad() : torch::zeros_like(p);
      const torch::Tensor ipt = (p * grad).abs();
      torch::Tensor& avg = exp_avg_ipt_[name];
      torch::Tensor& unc = exp_avg_unc_[name];
      if (!avg.defined()) avg = torch::zeros_like(p);
      if (!unc.defined()) unc = torch::zeros_like(p);
      avg = spec_.beta1 * avg + (1 - spec_.beta1) * ipt;
      unc = spec_.beta2 * unc + (1 - spec_.beta2) * (ipt - avg).abs();
    }
  }
}

std::map<std::string, std::vector<bool>> RankAllocator::mask_to_budget(int64_t budget) {
  torch::NoGradGuard no_grad;
  auto score = [&](const std::string& name) {
    auto avg = exp_avg_ipt_.find(name), unc = exp_avg_unc_.find(name);
    if (avg == exp_avg_ipt_.end() || unc == exp_avg_unc_.end() || !avg->second.defined())
      throw Error("AdaLoRA: no importance measured for " + name + " (a bug)");
    return avg->second * unc->second;
  };
  std::vector<torch::Tensor> triplets, all;
  for (auto& e : entries_) {
    const torch::Tensor a = score(e.module + ".lora_A").mean(1, /*keepdim=*/true);
    const torch::Tensor b = score(e.module + ".lora_B").mean(0).view({-1, 1});
    const torch::Tensor value = score(e.module + ".lora_E");
    const torch::Tensor triplet = value.view(-1) + torch::cat({a, b}, 1).sum(1);
    triplets.push_back(triplet);
    all.push_back(triplet.view(-1));
  }
  // PEFT's threshold: the (init - budget)-th smallest score; every triplet at or below it goes.
  // A budget at or above the initial one prunes nothing (PEFT's kthvalue would fail on k = 0).
  const int64_t k = init_budget_ - budget;
  const double threshold = k > 0 ? std::get<0>(torch::kthvalue(torch::cat(all), k)).item<double>()
                                 : -std::numeric_limits<double>::infinity();
  std::map<std::string, std::vector<bool>> pattern;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const torch::Tensor drop = triplets[i].le(threshold);
    entries_[i].update->svd_E.masked_fill_(drop.view({-1, 1}), 0.0);
    const torch::Tensor keep = drop.logical_not().to(torch::kCPU);
    std::vector<bool>& row = pattern[entries_[i].module];
    for (int64_t j = 0; j < keep.size(0); ++j) row.push_back(keep[j].item<bool>());
  }
  return pattern;
}

void RankAllocator::update_and_allocate(int64_t step) {
  const int64_t final_step = spec_.total_step - spec_.tfinal;
  if (step < final_step) {
    update_importance();
    const AdaLoraBudget b = adalora_budget(spec_, init_budget_, target_budget_, step);
    if (b.mask) spec_.rank_pattern = mask_to_budget(b.budget);
  } else if (step == final_step) {
    spec_.rank_pattern = mask_to_budget(adalora_budget(spec_, init_budget_, target_budget_, step).budget);
    exp_avg_ipt_.clear();
    exp_avg_unc_.clear();
  } else {
    // The final pattern, reapplied: the pruned entries of E learn again between steps.
    torch::NoGradGuard no_grad;
    for (auto& e : entries_) {
      const auto it = spec_.rank_pattern.find(e.module);
      if (it == spec_.rank_pattern.end()) continue;
      const torch::Tensor keep = torch::tensor(std::vector<int64_t>(it->second.begin(), it->second.end()), torch::kInt64);
      e.update->svd_E.masked_fill_(keep.eq(0).view({-1, 1}).to(e.update->svd_E.device()), 0.0);
    }
  }
}

std::vector<std::pair<std::string, int64_t>> RankAllocator::ranks() const {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& e : entries_) {
    const auto it = spec_.rank_pattern.find(e.module);
    out.emplace_back(e.module, it == spec_.rank_pattern.end() ? e.update->svd_A.size(0) : kept(it->second));
  }
  return out;
}

void RankAllocator::save(const std::string& dir) const {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& e : entries_) {
    for (const auto& [name, p] : svd_parameters(e.module, e.update)) {
      tensors.emplace_back("weight." + name, p.detach());
      if (auto it = exp_avg_ipt_.find(name); it != exp_avg_ipt_.end()) tensors.emplace_back("exp_avg_ipt." + name, it->second);
      if (auto it = exp_avg_unc_.find(name); it != exp_avg_unc_.end()) tensors.emplace_back("exp_avg_unc." + name, it->second);
    }
  }
  save_safetensors((fs::path(dir) / kAdaLoraStateFile).string(), tensors);
}

void RankAllocator::load(const std::string& dir) {
  const std::string path = (fs::path(dir) / kAdaLoraStateFile).string();
  if (!fs::exists(path)) throw ModelError(dir + ": no " + kAdaLoraStateFile + " (AdaLoRA's training state) to resume from");
  const auto tensors = load_safetensors(path);
  torch::NoGradGuard no_grad;
  exp_avg_ipt_.clear();
  exp_avg_unc_.clear();
  for (auto& e : entries_) {
    for (const auto& named : svd_parameters(e.module, e.update)) {
      // Not a structured binding: clang refuses lambdas that capture one (C++17).
      const std::string& name = named.first;
      const torch::Tensor& p = named.second;
      auto take = [&](const std::string& key, bool required) -> torch::Tensor {
        const auto it = tensors.find(key);
        if (it == tensors.end()) {
          if (required) throw ModelError(path + ": missing tensor \"" + key + "\"");
          return {};
        }
        if (it->second.sizes() != p.sizes())
          throw ModelError(path + ": tensor \"" + key + "\" does not fit the adapter's shape");
        return it->second.to(p.device(), p.scalar_type());
      };
      p.copy_(take("weight." + name, true));
      if (torch::Tensor t = take("exp_avg_ipt." + name, false); t.defined()) exp_avg_ipt_[name] = t;
      if (torch::Tensor t = take("exp_avg_unc." + name, false); t.defined()) exp_avg_unc_[name] = t;
    }
  }
}

}  // namespace dqe
