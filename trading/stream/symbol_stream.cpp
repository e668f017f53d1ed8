#include "trading/stream/symbol_stream.h"

#include <chrono>
#include <cmath>

#include "autograd/functions.h"
#include "trading/data/features.h"

namespace attnlab::trading {

const char* to_string(StreamMode m) { return m == StreamMode::exact ? "exact" : "cached"; }

StreamMode parse_stream_mode(const std::string& s) {
  if (s == "exact") return StreamMode::exact;
  if (s == "cached") return StreamMode::cached;
  throw Error("unknown stream mode '" + s + "' (expected exact or cached)");
}

SymbolStream::SymbolStream(std::shared_ptr<GQATrader> model, const TraderCheckpoint& ck, const StreamOptions& opt)
    : model_(std::move(model)), ck_(ck), opt_(opt) {
  ATTNLAB_CHECK(model_ != nullptr, "SymbolStream: no model");
  lookback_ = int64_t(ck_.train.lookback);
  const bool rope = ck_.model.positions == PositionEncoding::rope;
  const bool ring_kind = opt_.cache == "contiguous" || opt_.cache == "bf16" || opt_.cache == "f16";
  const int64_t window = ck_.model.window;  // > 0: a sliding-window model (the stream objective)
  // Default context: a window for the kinds that slide, and for learned positions (positions past the
  // training window were never trained); two windows for the rest, so they re-anchor every lookback ticks.
  // A sliding-window model's ring attends its own window of W keys per layer.
  const bool sliding_kind = rope && (ring_kind || opt_.cache == "sinks" || opt_.cache.starts_with("selective-"));
  const bool model_ring = window > 0 && ring_kind;
  context_ = opt_.context > 0 ? opt_.context
             : model_ring     ? window
                              : (sliding_kind || !rope ? lookback_ : 2 * lookback_);
  if (model_ring)
    ATTNLAB_CHECK(context_ == window, "SymbolStream: ", ck_.path, " attends a sliding window of ", window,
                  " positions per layer; its ring attends exactly that (--context ", context_, " given)");
  else
    ATTNLAB_CHECK(context_ >= lookback_, "SymbolStream: context ", context_, " must be >= the lookback ", lookback_,
                  " (the first prediction attends to a whole window)");
  model_->eval();
  if (opt_.mode == StreamMode::exact) return;
  ATTNLAB_CHECK(model_->config.causal, "SymbolStream: cached streaming needs a causal model (one new position at a ",
                "time cannot see later ones); ", ck_.path, " was trained without a causal mask — use the exact mode ",
                "or train with --causal");
  if (!rope)
    ATTNLAB_CHECK(context_ <= ck_.model.max_seq_len, "SymbolStream: context ", context_, " exceeds the model's ",
                  "learned positions (max_seq_len ", ck_.model.max_seq_len, ")");
  nn::CacheSpec spec;
  spec.kind = opt_.cache;
  spec.max_len = context_;
  if (spec.kind == "sinks") {
    ATTNLAB_CHECK(window == 0 && rope, "SymbolStream: attention sinks are for RoPE models trained with full causal ",
                  "attention; ", ck_.path, window > 0 ? " slides exactly without them (use --cache contiguous)"
                                                      : " has learned positions, which cannot slide");
    spec.sinks = opt_.sinks;
    spec.max_append = lookback_;  // the first window's prefill
    slides_ = true;
  } else if (model_ring) {  // a ring of W keys per layer, and room for prefills in chunks of W
    prefill_chunk_ = std::min(window, lookback_);
    spec.window = window;
    spec.max_len = window + prefill_chunk_ - 1;
    slides_ = true;
  } else if (ring_kind && rope) {  // a ring with sliding-window attention; room for the first window's prefill
    spec.window = context_;
    spec.max_len = context_ + lookback_;
    slides_ = true;
  } else if (spec.kind.starts_with("selective-")) {
    spec.sinks = opt_.sinks;
    spec.max_append = context_;
    slides_ = rope;  // learned positions still run out, so they re-anchor
  }
  cache_ = model_->make_cache(spec, 1);
  if (opt_.fused && TraderDecoder::supports(*model_, *cache_))
    decoder_ = std::make_unique<TraderDecoder>(*model_, static_cast<nn::ContiguousKVCache&>(*cache_));
}

void SymbolStream::reset() {
  tail_ = data::OhlcvSeries{};
  rows_.clear();
  if (cache_) cache_->clear();
}

std::vector<float> SymbolStream::feature_row(const data::OhlcvBar& bar) {
  ATTNLAB_CHECK(tail_.empty() || bar.ts_ms > tail_.ts_ms.back(), "SymbolStream: bar at ", bar.ts_ms,
                " ms is not after the previous one (", tail_.empty() ? 0 : tail_.ts_ms.back(), " ms)");
  tail_.push_back(bar, false);
  if (tail_.size() > 2 * kFeatureTail) tail_ = data::slice_rows(tail_, tail_.size() - kFeatureTail, tail_.size());
  // Only the newest row (compute_features validates the tail).
  const data::FeatureSet fs = data::compute_features(tail_, ck_.feature_config(), tail_.size() - 1);
  const size_t t = fs.rows() - 1;
  std::vector<float> row(fs.cols());
  for (size_t f = 0; f < fs.cols(); ++f) {
    const double v = fs.at(t, f);
    if (!std::isfinite(v)) return {};  // still warming up
    row[f] = float(ck_.normalizer.transform_value(f, v));
  }
  return row;
}

double SymbolStream::run(int64_t first, int64_t n) {
  const bool regression = ck_.model.output_type == OutputType::regression;
  if (n == 1 && decoder_ && cache_->position(0) > 0) {  // one new position after a prefill: the fused path
    const double out = decoder_->step(rows_[size_t(first)].data())[0];
    return regression ? out * ck_.target_std : out;
  }
  const int64_t F = int64_t(ck_.features.size());
  std::vector<double> x;
  x.reserve(size_t(n * F));
  for (int64_t i = first; i < first + n; ++i) x.insert(x.end(), rows_[size_t(i)].begin(), rows_[size_t(i)].end());
  const Tensor input = from_vector(x, {1, n, F});
  // A prefill into a ring narrower than it goes in chunks the ring takes (the prediction is the last's).
  const int64_t chunk = prefill_chunk_ > 0 ? prefill_chunk_ : n;
  double out = 0;
  for (int64_t i = 0; i < n; i += chunk)
    out = model_->forward(narrow(input, 1, i, std::min(chunk, n - i)), cache_.get()).pred.to_vector<double>()[0];
  return regression ? out * ck_.target_std : out;
}

bool SymbolStream::needs_reanchor() const {
  if (slides_) return false;
  if (cache_->length(0) >= context_) return true;
  return ck_.model.positions == PositionEncoding::learned && cache_->position(0) >= ck_.model.max_seq_len;
}

TickResult SymbolStream::process_tick(const data::OhlcvBar& bar) {
  NoGradGuard ng;
  const auto t0 = std::chrono::steady_clock::now();
  TickResult r;
  r.time_ms = bar.ts_ms;
  std::vector<float> row = feature_row(bar);
  if (row.empty()) return r;
  rows_.push_back(std::move(row));
  const int64_t n = int64_t(rows_.size()), keep = std::max(lookback_, context_);
  if (n > 2 * keep) rows_.erase(rows_.begin(), rows_.end() - keep);  // amortized trim
  const int64_t last = int64_t(rows_.size());
  if (last < lookback_) return r;
  r.ready = true;
  if (opt_.mode == StreamMode::exact) {
    r.prediction = run(last - lookback_, lookback_);
    r.context = lookback_;
  } else {
    if (cache_->position(0) == 0) {  // the first full window
      r.prediction = run(last - lookback_, lookback_);
    } else if (needs_reanchor()) {
      cache_->clear();
      const int64_t anchor = std::max<int64_t>(lookback_, context_ / 2);
      r.prediction = run(last - anchor, anchor);
      r.reanchored = true;
    } else {
      r.prediction = run(last - 1, 1);
    }
    r.context = std::min(cache_->length(int64_t(ck_.model.n_layers) - 1), context_);  // a ring holds more than it attends
    r.cache_bytes = cache_->bytes_used();
  }
  r.signal = backtest::threshold_signal(r.prediction, opt_.sizing.threshold);
  r.position = backtest::raw_target_weight(r.prediction, opt_.sizing);
  r.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace attnlab::trading
