// Streaming inference for one symbol: bars arrive one at a time (process_tick), each gives a
// prediction, a signal and the latency of producing them — the seeds' StreamingInferenceEngine and
// RealTimePredictor, made exact where the seeds' sliding window was not.
//
// Features: the bar is appended to a tail of the series and the newest feature row is computed with
// the batch code (data::compute_features) on that tail, then normalized with the checkpoint's
// normalizer — the same numbers the batch pipeline gives. The tail keeps 1-2 x kFeatureTail bars: every
// window feature needs far fewer, and Wilder's RSI forgets its starting point as (13/14)^n, which is
// below double precision after ~500 bars.
//
// Prediction, by mode (docs/streaming.md explains the choice):
//   exact   each tick runs the model on the last `lookback` rows (through a cache, as a prefill):
//           exactly the batch prediction of that window — what the model was trained and validated on.
//           Cost O(lookback^2) attention per tick.
//   cached  each tick appends ONE position to a KV cache and attends over what the cache holds.
//           Sliding kinds stream forever: contiguous/bf16/f16 caches become a ring with sliding-window
//           attention of `context` keys (RoPE models: exact against the full forward with that window
//           mask), selective caches evict down to `context`. Other kinds (paged, quantized) and learned
//           position embeddings re-anchor when full: the cache is cleared and the last max(lookback,
//           context/2) rows prefilled, so positions restart at 0 as in training. Until the stream is longer than
//           `lookback`, cached predictions equal exact ones; after that a multi-layer model's cached
//           prediction differs from recomputing the window (its deeper K/V saw a longer past) — the
//           difference is measured by `attnlab compare caches`, not hidden. The `sinks` kind keeps the
//           first `sinks` positions and a ring of lookback - sinks (StreamingLLM, nn/attention/kv_cache.h).
//   Sliding-window models (TraderConfig::window = W, the stream objective) are the exception that is
//   exact: their function is the full-sequence forward with the window mask, the lookback covers its
//   receptive field, so `exact` computes it, and `cached` does too — ring kinds with W keys per layer
//   (forever, no re-anchoring), the other kinds re-anchoring with a prefill of `lookback` rows (which
//   restores exactly the stream's state: nothing older reaches the prediction).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/attention/cache_factory.h"
#include "trading/backtest/engine.h"
#include "trading/data/ohlcv.h"
#include "trading/models/trader_decoder.h"
#include "trading/train/trader_checkpoint.h"

namespace attnlab::trading {

enum class StreamMode { exact, cached };
const char* to_string(StreamMode m);
StreamMode parse_stream_mode(const std::string& s);  // "exact" | "cached"

struct StreamOptions {
  StreamMode mode = StreamMode::exact;
  std::string cache = "contiguous";  // cached mode: any nn::cache_kinds() name
  int64_t context = 0;               // cached mode: positions attended; 0 = lookback for sliding kinds and
                                     // learned positions, 2 * lookback for kinds that re-anchor
  int64_t sinks = 4;                 // selective caches (never evicted), the sinks kind (kept)
  // cached mode: one-position ticks through trading::TraderDecoder (no per-op tensors) when the cache
  // allows (contiguous, bf16, f16); false keeps them on the tensor forward (same numbers, slower).
  bool fused = true;
  backtest::BacktestConfig sizing;   // signal and position from the prediction (threshold, tanh sizing)
};

struct TickResult {
  int64_t time_ms = 0;
  bool ready = false;          // false during warm-up (features or fewer than lookback rows)
  double prediction = 0;       // regression: predicted log return over the horizon; else the model output
  backtest::Signal signal;     // LONG / SHORT / NEUTRAL with confidence (threshold rule)
  double position = 0;         // target weight (the sizing rule)
  double latency_ms = 0;       // features + model for this tick
  int64_t context = 0;         // positions the prediction attended to (last layer's cache length)
  int64_t cache_bytes = 0;     // bytes the cache holds
  bool reanchored = false;     // cached mode: this tick cleared and re-prefilled the cache
};

class SymbolStream {
 public:
  static constexpr size_t kFeatureTail = 1024;

  SymbolStream(std::shared_ptr<GQATrader> model, const TraderCheckpoint& ck, const StreamOptions& opt = {});

  // Appends one bar (strictly later than the previous one) and predicts for the window ending at it.
  TickResult process_tick(const data::OhlcvBar& bar);
  void reset();  // forget every bar and the cache

  int64_t lookback() const { return lookback_; }
  const nn::KVCache& cache() const { return *cache_; }
  bool fused() const { return decoder_ != nullptr; }  // cached ticks run through TraderDecoder

 private:
  // The newest normalized feature row, or empty while the features warm up.
  std::vector<float> feature_row(const data::OhlcvBar& bar);
  double run(int64_t first_row, int64_t n_rows);  // rows of rows_ through the cache -> prediction
  bool needs_reanchor() const;

  std::shared_ptr<GQATrader> model_;
  TraderCheckpoint ck_;
  StreamOptions opt_;
  int64_t lookback_, context_;
  int64_t prefill_chunk_ = 0;           // > 0: prefills go in chunks of this many rows (a windowed model's ring)
  bool slides_ = false;                 // the cache streams forever (ring or evicting)
  std::unique_ptr<nn::KVCache> cache_;
  std::unique_ptr<TraderDecoder> decoder_;  // cached mode, when opt.fused and the cache allows
  data::OhlcvSeries tail_;              // the last kFeatureTail bars
  std::vector<std::vector<float>> rows_;  // normalized feature rows since the features became valid
};

}  // namespace attnlab::trading
