#include "trading/models/gqa_trader.h"

#include <algorithm>

#include "autograd/functions.h"
#include "kernels/error.h"
#include "nn/init.h"
#include "nn/losses.h"
#include "nn/attention/paged_kv_cache.h"

namespace attnlab::trading {

const char* to_string(OutputType t) {
  switch (t) {
    case OutputType::regression: return "regression";
    case OutputType::direction: return "direction";
    case OutputType::allocation: return "allocation";
  }
  return "?";
}
const char* to_string(PositionEncoding p) { return p == PositionEncoding::learned ? "learned" : "rope"; }
const char* to_string(nn::AttentionBackend b) {
  switch (b) {
    case nn::AttentionBackend::math: return "math";
    case nn::AttentionBackend::flash: return "flash";
    case nn::AttentionBackend::reference: return "reference";
  }
  return "?";
}

OutputType parse_output_type(const std::string& s) {
  if (s == "regression") return OutputType::regression;
  if (s == "direction") return OutputType::direction;
  if (s == "allocation") return OutputType::allocation;
  throw Error("unknown output_type '" + s + "' (expected regression, direction or allocation)");
}
PositionEncoding parse_positions(const std::string& s) {
  if (s == "learned") return PositionEncoding::learned;
  if (s == "rope") return PositionEncoding::rope;
  throw Error("unknown positions '" + s + "' (expected learned or rope)");
}
nn::AttentionBackend parse_backend(const std::string& s) {
  if (s == "flash") return nn::AttentionBackend::flash;
  if (s == "math") return nn::AttentionBackend::math;
  if (s == "reference") return nn::AttentionBackend::reference;
  throw Error("unknown attention backend '" + s + "' (expected flash, math or reference)");
}

void TraderConfig::validate() const {
  ATTNLAB_CHECK(input_dim > 0, "TraderConfig: input_dim must be > 0, got ", input_dim);
  ATTNLAB_CHECK(d_model > 0 && n_heads > 0 && d_model % n_heads == 0, "TraderConfig: d_model ", d_model,
                " must be a positive multiple of n_heads ", n_heads);
  ATTNLAB_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "TraderConfig: n_heads ", n_heads,
                " must be a multiple of n_kv_heads ", n_kv_heads);
  ATTNLAB_CHECK(positions != PositionEncoding::rope || head_dim() % 2 == 0,
                "TraderConfig: RoPE needs an even head_dim, got ", head_dim());
  ATTNLAB_CHECK(n_layers > 0, "TraderConfig: n_layers must be > 0, got ", n_layers);
  ATTNLAB_CHECK(d_ff > 0, "TraderConfig: d_ff must be > 0, got ", d_ff);
  ATTNLAB_CHECK(max_seq_len > 0, "TraderConfig: max_seq_len must be > 0, got ", max_seq_len);
  ATTNLAB_CHECK(n_outputs > 0, "TraderConfig: n_outputs must be > 0, got ", n_outputs);
  ATTNLAB_CHECK(dropout >= 0 && dropout < 1, "TraderConfig: dropout must be in [0, 1), got ", dropout);
  ATTNLAB_CHECK(window >= 0, "TraderConfig: window must be >= 0 (0 = full attention), got ", window);
  ATTNLAB_CHECK(window == 0 || positions == PositionEncoding::rope, "TraderConfig: a sliding window (", window,
                ") needs positions = rope (learned absolute positions cannot slide)");
  ATTNLAB_CHECK(window == 0 || causal, "TraderConfig: a sliding window (", window,
                ") is a causal mask; set causal = true");
}

nlohmann::json TraderConfig::to_json() const {
  nlohmann::json j{{"input_dim", input_dim},   {"d_model", d_model},        {"n_heads", n_heads},
                   {"n_kv_heads", n_kv_heads}, {"n_layers", n_layers},      {"d_ff", d_ff},
                   {"max_seq_len", max_seq_len}, {"n_outputs", n_outputs},  {"output_type", to_string(output_type)},
                   {"dropout", dropout},       {"positions", to_string(positions)}, {"backend", to_string(backend)},
                   {"causal", causal}};
  if (window > 0) j["window"] = window;  // only when set, so full-attention models' files are unchanged
  return j;
}

TraderConfig TraderConfig::from_json(const nlohmann::json& j) {
  ATTNLAB_CHECK(j.is_object(), "TraderConfig: expected a JSON object, got ", j.dump());
  TraderConfig c;
  try {
    auto get_int = [&](const char* k, int64_t& v) { if (j.contains(k)) v = j.at(k).get<int64_t>(); };
    get_int("input_dim", c.input_dim);
    get_int("d_model", c.d_model);
    get_int("n_heads", c.n_heads);
    get_int("n_kv_heads", c.n_kv_heads);
    get_int("n_layers", c.n_layers);
    get_int("d_ff", c.d_ff);
    get_int("max_seq_len", c.max_seq_len);
    get_int("n_outputs", c.n_outputs);
    get_int("window", c.window);
    if (j.contains("dropout")) c.dropout = j.at("dropout").get<double>();
    if (j.contains("output_type")) c.output_type = parse_output_type(j.at("output_type").get<std::string>());
    if (j.contains("positions")) c.positions = parse_positions(j.at("positions").get<std::string>());
    if (j.contains("backend")) c.backend = parse_backend(j.at("backend").get<std::string>());
    if (j.contains("causal")) c.causal = j.at("causal").get<bool>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("TraderConfig: bad JSON value: ") + e.what());
  }
  return c;
}

GQATrader::GQATrader(const TraderConfig& cfg) : config(cfg) {
  config.validate();
  const int64_t C = config.d_model;
  const bool rope = config.positions == PositionEncoding::rope;
  input_proj = register_module("input_proj", std::make_shared<nn::Linear>(config.input_dim, C));
  if (!rope) pos_encoding = register_parameter("pos_encoding", normal({1, config.max_seq_len, C}, 0.0, 0.02));
  layers = register_module("layers", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < config.n_layers; ++i)
    layers->push_back(std::make_shared<nn::TransformerBlock>(C, config.n_heads, config.n_kv_heads, config.d_ff,
                                                            config.dropout, rope, /*unbounded RoPE*/ 0));
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(C));
  if (config.output_type == OutputType::allocation) {
    auto seq = std::make_shared<nn::Sequential>();
    seq->push_back(std::make_shared<nn::Linear>(C, config.n_outputs)).push_back(std::make_shared<nn::Tanh>());
    head = register_module("head", seq);
  } else {
    head = register_module("head", std::make_shared<nn::Linear>(C, config.n_outputs));
  }
  // The seed's _init_weights: xavier_uniform weights, zero biases on every Linear.
  apply([](nn::Module& m) {
    if (auto* lin = dynamic_cast<nn::Linear*>(&m)) {
      nn::init::xavier_uniform_(lin->weight);
      if (lin->bias.defined()) nn::init::zeros_(lin->bias);
    }
  });
  set_backend(config.backend);
}

void GQATrader::set_backend(nn::AttentionBackend b) {
  config.backend = b;
  for (size_t i = 0; i < layers->size(); ++i) layer(i)->attention->backend = b;
}

TraderOutput GQATrader::forward(const Tensor& x, nn::KVCache* cache, bool return_attention) {
  TraderOutput out;
  const Tensor h = encode(x, cache, return_attention, &out.attention);
  out.pred = (*head)(select(h, 1, x.size(1) - 1));  // last position: [B, C] -> [B, n_outputs]
  return out;
}

Tensor GQATrader::forward_sequence(const Tensor& x, nn::KVCache* cache) {
  return (*head)(encode(x, cache, false, nullptr));  // [B, T, C] -> [B, T, n_outputs]
}

Tensor GQATrader::encode(const Tensor& x, nn::KVCache* cache, bool return_attention, std::vector<Tensor>* attention) {
  ATTNLAB_CHECK(x.dim() == 3 && x.size(2) == config.input_dim, "GQATrader: expected x [B, T, ",
                config.input_dim, "], got ", describe(x));
  const int64_t B = x.size(0), T = x.size(1);
  ATTNLAB_CHECK(T > 0, "GQATrader: empty sequence");
  std::vector<int64_t> start(size_t(B), 0);  // each row's first position
  if (cache) {
    ATTNLAB_CHECK(cache->num_layers() >= config.n_layers && cache->batch() == B, "GQATrader: cache ", cache->name(),
                  " has ", cache->num_layers(), " layers and batch ", cache->batch(), ", the model ", config.n_layers,
                  " layers and the input batch ", B);
    start = cache->positions(0);
  }
  Tensor h = (*input_proj)(x);
  if (pos_encoding.defined()) h = h + learned_positions(start, T);
  nn::AttentionMask mask;
  mask.causal = config.causal;
  mask.window = config.window;
  for (size_t i = 0; i < layers->size(); ++i) {
    nn::AttentionOutput a = layer(i)->forward(h, mask, cache, int64_t(i), return_attention);
    h = a.out;
    if (return_attention && attention) attention->push_back(a.weights);
  }
  return (*norm)(h);
}

Tensor GQATrader::learned_positions(const std::vector<int64_t>& start, int64_t T) const {
  const int64_t first = *std::min_element(start.begin(), start.end());
  const int64_t last = *std::max_element(start.begin(), start.end()) + T - 1;
  ATTNLAB_CHECK(last < config.max_seq_len, "GQATrader: positions ", first, "..", last, " exceed max_seq_len ",
                config.max_seq_len, " of the learned position embedding (RoPE models have no such limit)");
  if (first + T - 1 == last) return narrow(pos_encoding, 1, first, T);  // every row at the same positions
  std::vector<int64_t> idx;  // a ragged batch: each row's own positions
  for (int64_t s : start)
    for (int64_t t = 0; t < T; ++t) idx.push_back(s + t);
  return reshape(index_select(select(pos_encoding, 0, 0), 0, from_vector_i64(idx)),
                 {int64_t(start.size()), T, config.d_model});
}

Tensor GQATrader::generate(const Tensor& context, int64_t steps, nn::KVCache& cache) {
  ATTNLAB_CHECK(config.n_outputs == config.input_dim && config.output_type == OutputType::regression,
                "GQATrader::generate feeds each prediction back as the next input, so it needs a regression model ",
                "with n_outputs == input_dim (got n_outputs ", config.n_outputs, ", input_dim ", config.input_dim,
                ", output_type ", to_string(config.output_type), ")");
  ATTNLAB_CHECK(steps >= 1, "GQATrader::generate: steps must be >= 1, got ", steps);
  ATTNLAB_CHECK(config.causal, "GQATrader::generate decodes through a KV cache, which needs a causal model ",
                "(config.causal)");
  NoGradGuard ng;
  std::vector<Tensor> preds;
  Tensor pred = forward(context, &cache).pred;  // [B, F]
  preds.push_back(pred);
  for (int64_t s = 1; s < steps; ++s) {
    pred = forward(unsqueeze(pred, 1), &cache).pred;
    preds.push_back(pred);
  }
  return stack(preds, 1);  // [B, steps, F]
}

TraderOutput GQATrader::forward_with_prefix(const Tensor& x, nn::PrefixCache& prefix) {
  ATTNLAB_CHECK(x.dim() == 3 && x.size(0) == 1, "GQATrader::forward_with_prefix: one request at a time, x [1, T, F], ",
                "got ", describe(x));
  ATTNLAB_CHECK(config.causal, "GQATrader::forward_with_prefix reuses cached K/V of a prefix, which needs a causal ",
                "model (config.causal): without the mask a prefix's K/V depend on later rows");
  NoGradGuard ng;
  const Tensor rows = select(x, 0, 0);
  const nn::PrefixCache::Lookup hit = prefix.begin(rows);
  nn::PagedKVCache cache(std::shared_ptr<nn::PagedKVPool>(&prefix.pool(), [](nn::PagedKVPool*) {}), {hit.seq});
  TraderOutput out;
  try {
    out = forward(narrow(x, 1, hit.cached, x.size(1) - hit.cached), &cache);
    prefix.commit(hit.seq, rows);
  } catch (...) {
    prefix.pool().free_sequence(hit.seq);
    throw;
  }
  prefix.pool().free_sequence(hit.seq);
  return out;
}

Tensor GQATrader::compute_loss(const Tensor& pred, const Tensor& target) const {
  ATTNLAB_CHECK(pred.shape() == target.shape(), "GQATrader::compute_loss: pred ", describe(pred), " vs target ",
                describe(target));
  switch (config.output_type) {
    case OutputType::regression: return nn::mse_loss(pred, target);
    case OutputType::direction:
      return nn::binary_cross_entropy_with_logits(pred, to_dtype(gt(target, 0.0), pred.dtype()));
    case OutputType::allocation: return nn::allocation_loss(pred, target);
  }
  throw Error("GQATrader::compute_loss: unknown output type");
}

int64_t GQATrader::kv_cache_bytes_per_token(int64_t dtype_bytes) const {
  return config.n_layers * 2 * config.n_kv_heads * config.head_dim() * dtype_bytes;
}

std::unique_ptr<nn::ContiguousKVCache> GQATrader::make_cache(int64_t batch, int64_t max_len) const {
  return std::make_unique<nn::ContiguousKVCache>(config.n_layers, batch, max_len, config.n_kv_heads,
                                                 config.head_dim());
}

std::unique_ptr<nn::KVCache> GQATrader::make_cache(const nn::CacheSpec& spec, int64_t batch) const {
  nn::CacheSpec s = spec;
  if (config.positions == PositionEncoding::rope) s.rope_base = layer(0)->attention->rope->base;
  return nn::make_kv_cache(s, config.n_layers, batch, config.n_kv_heads, config.head_dim());
}

std::shared_ptr<GQATrader> mha_to_gqa(const GQATrader& mha, int64_t target_kv_heads) {
  const TraderConfig& src = mha.config;
  ATTNLAB_CHECK(target_kv_heads > 0 && src.n_kv_heads % target_kv_heads == 0, "mha_to_gqa: target_kv_heads ",
                target_kv_heads, " must divide the source's n_kv_heads ", src.n_kv_heads);
  TraderConfig cfg = src;
  cfg.n_kv_heads = target_kv_heads;
  auto out = std::make_shared<GQATrader>(cfg);
  const int64_t G = src.n_kv_heads / target_kv_heads, D = src.head_dim(), C = src.d_model;
  NoGradGuard ng;
  nn::NamedTensorList sd;
  for (const auto& [name, t] : mha.state_dict()) {
    const bool kv = name.size() > 14 && (name.ends_with("attention.k_proj.weight") ||
                                         name.ends_with("attention.v_proj.weight"));
    if (!kv || G == 1) {
      sd.emplace_back(name, t);
      continue;
    }
    // weight [Hkv_src * D, C] = [target, G, D, C]: average the G heads of each group.
    sd.emplace_back(name, reshape(mean(reshape(t, {target_kv_heads, G, D, C}), {1}), {target_kv_heads * D, C}));
  }
  out->load_state_dict(sd);
  out->train(mha.is_training());
  return out;
}

}  // namespace attnlab::trading
