// Prefix tuning (P-tuning v2; Li and Liang, 2021; Liu et al., 2022), as Hugging Face PEFT computes
// it on Hugging Face BERT: trained keys and values for num_virtual_tokens virtual tokens in front
// of every layer's attention. Row t of the table [num_virtual_tokens, num_layers * 2 * hidden],
// viewed as [num_layers * 2, heads, head_dim], gives layer i its key (2i) and value (2i + 1); the
// attention mask admits them; the text's position ids start at num_virtual_tokens, so that a pair
// may use only the positions left (text_positions, model/model_spec.h); token types are unchanged.
// Queries are the text's alone, so the output has the text's length.
//
// The file layout is PEFT's for a prompt-learning method: adapter_config.json with "peft_type":
// "PREFIX_TUNING", and adapter_model.safetensors with "prompt_embeddings" (the table) and the
// heads as "base_model.classifier.weight" (PEFT does not wrap the base for these methods, so the
// names have no ".model."). Trained with the reparametrisation (--prefix-projection: the table is
// an MLP of a smaller embedding, PEFT's prefix_projection), the file holds the table as projected,
// as PEFT saves it in inference mode, and beside it dqe's own "prefix_encoder.*" tensors (the
// embedding and the MLP), which PEFT ignores and a resumed run continues from.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/bert.h"
#include "model/peft/adapter.h"

namespace dqe {

class PrefixSpec : public AdapterSpec {
 public:
  // Virtual tokens in front of every layer's keys and values.
  int64_t num_virtual_tokens = 20;
  // Whether the table is trained through PEFT's reparametrisation: an embedding [tokens, hidden]
  // through Linear(hidden, projection_size), tanh, Linear(projection_size, layers * 2 * hidden).
  bool projection = false;
  // The MLP's width (PEFT's encoder_hidden_size); 0: the base's hidden size.
  int64_t projection_size = 0;
  // The shape adapter_config.json records (0 where it records none): checked against the base.
  int64_t token_dim = 0, num_layers = 0, num_attention_heads = 0;

  std::unique_ptr<AdapterSpec> clone() const override { return std::make_unique<PrefixSpec>(*this); }
  std::string kind() const override { return "prefix"; }
  std::string peft_type() const override { return "PREFIX_TUNING"; }
  std::string describe() const override;
  std::shared_ptr<EncoderAdapterImpl> make_module(BertModelImpl& bert, const BertConfig& config) const override;
  void check_base(const BertConfig& base, const std::string& origin) const override;
  bool starts_as_base() const override { return false; }
  int64_t positions_taken() const override { return num_virtual_tokens; }
  nlohmann::json adapter_config(const std::vector<std::string>& modules_to_save, const BertConfig& base) const override;
  // PEFT's names to the model's: "prompt_embeddings" (unless the file holds dqe's
  // reparametrisation, which then stands in for it) and "base_model.<head>". Throws ModelError
  // naming origin for a table of another shape or a reparametrisation cut short.
  void read_tensors(std::map<std::string, torch::Tensor>& tensors, int64_t num_layers,
                    const std::string& origin) override;
  // The model's names to PEFT's, with the table projected when it is reparametrised.
  std::vector<std::pair<std::string, torch::Tensor>> tensors_to_save(
      std::vector<std::pair<std::string, torch::Tensor>> tensors) const override;
  std::string why_not_mergeable() const override;
  // The MLP's width once the base is known.
  int64_t projection_width(const BertConfig& base) const { return projection_size > 0 ? projection_size : base.hidden_size; }
};

// Reads PEFT's adapter_config.json of a prefix-tuning adapter. Throws ModelError naming origin.
PrefixSpec prefix_spec_from_adapter_config(const nlohmann::json& j, const std::string& origin);
// The same as an AdapterKind reads it (adapter.h).
std::unique_ptr<AdapterSpec> read_prefix_config(const nlohmann::json& j, const std::string& origin);

// The table of a reparametrised prefix: linear2(tanh(linear0(embedding))), [tokens, width].
torch::Tensor project_prefix(const torch::Tensor& embedding, const torch::Tensor& w0, const torch::Tensor& b0,
                             const torch::Tensor& w2, const torch::Tensor& b2);

// The prefix of a model, registered as "prefix_encoder.prompt_embeddings" (below the part's
// "bert." prefix) or, reparametrised, as "prefix_encoder.embedding.weight" and
// "prefix_encoder.transform.{0,2}.{weight,bias}" (PEFT's PrefixEncoder's names).
class PrefixTuningImpl : public EncoderAdapterImpl {
 public:
  PrefixTuningImpl(const BertConfig& config, const PrefixSpec& spec);

  // The table [tokens, layers * 2 * hidden].
  torch::Tensor table();
  void attention_inputs(size_t layer, torch::Tensor& keys, torch::Tensor& values, torch::Tensor& mask_add) override;
  int64_t first_position() const override { return tokens_; }
  // PEFT's initialisation: the table (or the embedding) N(0, 1), the MLP as torch.nn.Linear's
  // default.
  void reset() override;

 private:
  int64_t tokens_, layers_;
  torch::Tensor table_;  // without the reparametrisation
  torch::Tensor embedding_;
  torch::nn::Linear transform0_{nullptr}, transform2_{nullptr};
};

// Checks --prefix-tokens against a base: at least 1, and leaving at least 3 positions for the
// text. Throws ConfigError naming --prefix-tokens.
void check_prefix_tokens(int64_t tokens, const BertConfig& base);

}  // namespace dqe
