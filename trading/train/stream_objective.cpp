#include "trading/train/stream_objective.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "autograd/functions.h"
#include "tensor/ops.h"

namespace attnlab::trading {

namespace {

// Runs of consecutive values in ascending `s`: [first, last] pairs.
std::vector<std::pair<size_t, size_t>> consecutive_runs(const std::vector<size_t>& s) {
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0) ATTNLAB_CHECK(s[i] > s[i - 1], "stream objective: sample indices must ascend (", s[i - 1], ", ", s[i], ")");
    if (runs.empty() || s[i] != runs.back().second + 1) runs.push_back({s[i], s[i]});
    else runs.back().second = s[i];
  }
  return runs;
}

uint64_t mix(uint64_t x) {  // splitmix64's finalizer: a well-spread phase from (seed, epoch)
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

std::vector<Segment> stream_segments(const std::vector<size_t>& samples, size_t targets, uint64_t seed) {
  ATTNLAB_CHECK(targets > 0, "stream objective: targets per segment must be > 0");
  const size_t phase = size_t(mix(seed) % targets);
  std::vector<Segment> tiles;
  for (const auto& [first, last] : consecutive_runs(samples))
    for (size_t start = first + phase; start + targets - 1 <= last; start += targets) tiles.push_back({start, targets});
  std::vector<size_t> order(tiles.size());
  std::iota(order.begin(), order.end(), size_t(0));
  order = data::shuffled(order, seed);
  std::vector<Segment> out;
  out.reserve(tiles.size());
  for (size_t i : order) out.push_back(tiles[i]);
  return out;
}

size_t max_stream_segments(const std::vector<size_t>& samples, size_t targets) {
  ATTNLAB_CHECK(targets > 0, "stream objective: targets per segment must be > 0");
  size_t n = 0;
  for (const auto& [first, last] : consecutive_runs(samples)) n += (last - first + 1) / targets;
  return n;
}

size_t segments_per_batch(size_t batch_size, size_t targets) { return std::max<size_t>(1, batch_size / targets); }

Tensor segment_inputs(const TraderDataset& ds, const std::vector<Segment>& batch) {
  ATTNLAB_CHECK(!batch.empty(), "segment_inputs: no segments");
  std::vector<Tensor> views;
  for (const Segment& s : batch) {
    ATTNLAB_CHECK(s.targets == batch[0].targets, "segment_inputs: segments of ", batch[0].targets, " and ", s.targets,
                  " targets in one batch");
    ATTNLAB_CHECK(s.first + 1 >= ds.lookback && s.first + s.targets <= ds.features.rows(), "segment_inputs: samples ",
                  s.first, "..", s.first + s.targets - 1, " have no warm-up of ", ds.lookback - 1, " rows in ",
                  ds.features.rows(), " rows");
    views.push_back(ops::narrow(ds.inputs, 0, int64_t(s.first + 1 - ds.lookback), int64_t(ds.lookback - 1 + s.targets)));
  }
  return ops::stack(views, 0);
}

Tensor segment_targets(const TraderDataset& ds, const std::vector<Segment>& batch) {
  std::vector<size_t> idx;
  for (const Segment& s : batch)
    for (size_t j = 0; j < s.targets; ++j) idx.push_back(s.first + j);
  return ds.target_tensor(idx);
}

Tensor stream_batch_loss(GQATrader& model, const TraderDataset& ds, const std::vector<Segment>& batch, Device device) {
  const int64_t B = int64_t(batch.size()), n = int64_t(batch[0].targets), warm = int64_t(ds.lookback) - 1;
  const Tensor pred = model.forward_sequence(ops::to_device(segment_inputs(ds, batch), device));
  const Tensor last = reshape(narrow(pred, 1, warm, n), {B * n, pred.size(2)});  // the targets' positions
  return model.compute_loss(last, ops::to_device(segment_targets(ds, batch), device));
}

bool sequence_predictions_exact(const GQATrader& model, const TraderDataset& ds) {
  return model.config.window > 0 && int64_t(ds.lookback) >= model.config.receptive_field();
}

std::vector<double> predict_sequence(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                                     size_t chunk) {
  ATTNLAB_CHECK(sequence_predictions_exact(model, ds), "predict_sequence: needs a sliding-window model whose receptive ",
                "field (", model.config.receptive_field(), ") fits in the lookback (", ds.lookback, ")");
  ATTNLAB_CHECK(chunk > 0, "predict_sequence: chunk must be > 0");
  std::vector<size_t> sorted = idx;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::map<size_t, double> pred;
  const Device dev = model.device();
  for (const auto& [first, last] : consecutive_runs(sorted))
    for (size_t c0 = first; c0 <= last; c0 += chunk) {
      const size_t n = std::min(chunk, last - c0 + 1);
      const Tensor out = model.forward_sequence(ops::to_device(segment_inputs(ds, {{c0, n}}), dev));
      const std::vector<double> v =
          ops::narrow(ops::select(ops::select(out, 0, 0), 1, 0), 0, int64_t(ds.lookback) - 1, int64_t(n))
              .to_vector<double>();
      for (size_t j = 0; j < n; ++j) pred[c0 + j] = v[j];
    }
  std::vector<double> res;
  res.reserve(idx.size());
  for (size_t t : idx) res.push_back(pred.at(t));
  return res;
}

}  // namespace attnlab::trading
