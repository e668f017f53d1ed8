// The stream objective (issue 22): train a sliding-window GQATrader so that its cached stream *is* the
// model, instead of training on windows that start at position 0 and streaming something else.
//
// The model (TraderConfig::window = W, RoPE, causal) computes, at every row of a stream, the
// full-sequence forward with the window mask; a ring of W keys per layer decodes exactly that
// (trading/models/gqa_trader.h). That output depends on the last R = receptive_field() = n_layers (W - 1)
// + 1 rows only, so training on it needs no stream from the start of the data: a *segment* of
// lookback - 1 + n consecutive rows (lookback >= R) gives n positions whose outputs are exactly the
// stream's — the last n. The loss is taken at each of them (every position past a warm-up of lookback - 1
// rows), so one forward of lookback - 1 + n rows trains n targets, where the window objective trains one
// target per forward of lookback rows.
//
// Segments tile the split's runs of consecutive samples; each epoch starts the tiling at a phase drawn
// from (seed, epoch) and shuffles the segments, so the boundaries move and every target is trained on
// over the epochs (a piece shorter than n at either end of a run waits for another phase). A batch holds
// max(1, batch_size / n) segments: batch_size counts targets per optimizer step in both objectives.
//
// Evaluation uses the same fact: the predictions of a model whose window's receptive field fits in the
// lookback come out of one forward_sequence per run of consecutive samples (in chunks), equal to one
// lookback-row window per sample up to float rounding, at O(n + lookback) positions instead of
// O(n * lookback).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "trading/data/trader_dataset.h"
#include "trading/models/gqa_trader.h"

namespace attnlab::trading {

// One training sequence: samples first .. first + targets - 1 (consecutive), their rows and the
// lookback - 1 rows before: rows [first - lookback + 1, first + targets - 1].
struct Segment {
  size_t first = 0, targets = 0;
};

// The segments of one epoch over `samples` (ascending sample indices), `targets` samples each, tiled
// from phase (seed) % targets within each run of consecutive indices, then shuffled by seed.
std::vector<Segment> stream_segments(const std::vector<size_t>& samples, size_t targets, uint64_t seed);

// The most segments any epoch's tiling gives (phase 0): what the learning-rate schedule is sized for.
size_t max_stream_segments(const std::vector<size_t>& samples, size_t targets);

// Segments per optimizer step: max(1, batch_size / targets).
size_t segments_per_batch(size_t batch_size, size_t targets);

// Inputs [B, lookback - 1 + n, F] f32 of B segments of n targets each (views of ds.inputs, stacked once),
// and their scaled targets [B * n, 1] in the same order as forward_sequence's last n positions.
Tensor segment_inputs(const TraderDataset& ds, const std::vector<Segment>& batch);
Tensor segment_targets(const TraderDataset& ds, const std::vector<Segment>& batch);

// The objective's loss of one batch: model.compute_loss over the last n positions of every segment.
Tensor stream_batch_loss(GQATrader& model, const TraderDataset& ds, const std::vector<Segment>& batch, Device device);

// Whether predict_sequence gives what a lookback-row window per sample gives: a sliding-window model
// whose receptive field fits in the dataset's lookback.
bool sequence_predictions_exact(const GQATrader& model, const TraderDataset& ds);

// The model's outputs pred[:, 0] (model units, as forward gives them) for the samples idx (any order),
// one forward_sequence per run of consecutive samples, at most chunk samples per forward (chunks
// overlap by lookback - 1 rows). Needs sequence_predictions_exact; eval mode and no-grad are the caller's.
std::vector<double> predict_sequence(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                                     size_t chunk = 512);

}  // namespace attnlab::trading
