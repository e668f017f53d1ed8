// Replaying a series through a SymbolStream and measuring a stream against a model's exact semantics:
// shared by `attnlab compare caches`, `compare objectives` and `demo`.
//
// Which reference is "exact" depends on the model (docs/streaming.md):
//   a sliding-window model whose lookback covers its receptive field (the stream objective): its function
//     is the full-sequence forward with the window mask over every row the stream sees, which
//     full_sequence_outputs computes in one pass;
//   any other model: the exact stream, each tick recomputing the last lookback rows from position 0 — the
//     windows it was trained and validated on.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "trading/data/ohlcv.h"
#include "trading/stream/symbol_stream.h"
#include "trading/data/trader_dataset.h"

namespace attnlab::trading {

struct StreamReplay {
  std::vector<size_t> rows;        // the rows asked for (ascending)
  std::vector<double> prediction;  // TickResult::prediction at each row (log return for regression models)
  std::vector<double> latency_ms;  // the tick's latency at each row
  int64_t max_cache_bytes = 0, reanchors = 0;  // over the rows asked for
};

// Feeds bars 0 .. rows.back() of `series` to the stream (from its current state; a fresh stream starts at
// the series' first bar) and keeps the ticks of `rows`. attnlab::Error when one of them is not ready
// (features or the first window still warming up). A progress bar on stderr when `progress`.
StreamReplay replay(SymbolStream& stream, const data::OhlcvSeries& series, const std::vector<size_t>& rows,
                    bool progress = false, const std::string& label = "stream");

// How far `got` is from `ref`: mean |got - ref| / mean |ref| and the fraction of equal signs (x > 0).
struct StreamDeviation {
  double relative = 0, sign_agreement = 1;
};
StreamDeviation deviation(const std::vector<double>& got, const std::vector<double>& ref);

// Whether the model's exact semantics is the full-sequence windowed forward (see above).
bool full_sequence_semantics(const TraderCheckpoint& ck);
// The model's outputs pred[:, 0] (model units, as forward gives them) at `rows` of ds from one
// forward_sequence over rows first_valid .. rows.back(): the stream's own function for such a model.
std::vector<double> full_sequence_outputs(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& rows);
// The reference in words, for tables: "the full-sequence forward with its sliding window (W = ...)" or
// "the exact stream: each tick recomputes the last L rows from position 0 ...".
std::string exact_semantics(const TraderCheckpoint& ck);

}  // namespace attnlab::trading
