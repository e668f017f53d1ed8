#include "trading/stream/stream_replay.h"

#include <algorithm>
#include <cmath>

#include "autograd/functions.h"
#include "trading/train/progress.h"

namespace attnlab::trading {

StreamReplay replay(SymbolStream& stream, const data::OhlcvSeries& series, const std::vector<size_t>& rows,
                    bool progress, const std::string& label) {
  StreamReplay out;
  if (rows.empty()) return out;
  ATTNLAB_CHECK(std::is_sorted(rows.begin(), rows.end()) && rows.back() < series.size(), "replay: rows must ascend ",
                "and lie in the series' ", series.size(), " bars");
  ProgressBar bar(label, int64_t(rows.back() + 1), progress);
  size_t next = 0;
  for (size_t t = 0; t <= rows.back(); ++t) {
    const TickResult r = stream.process_tick(series.bar(t));
    bar.update(int64_t(t + 1), 1);
    if (next >= rows.size() || rows[next] != t) continue;
    ++next;
    ATTNLAB_CHECK(r.ready, "replay: no prediction at row ", t, " (features or the first window still warming up)");
    out.rows.push_back(t);
    out.prediction.push_back(r.prediction);
    out.latency_ms.push_back(r.latency_ms);
    out.max_cache_bytes = std::max(out.max_cache_bytes, r.cache_bytes);
    out.reanchors += r.reanchored;
  }
  bar.finish();
  return out;
}

StreamDeviation deviation(const std::vector<double>& got, const std::vector<double>& ref) {
  ATTNLAB_CHECK(got.size() == ref.size() && !got.empty(), "deviation: ", got.size(), " values against ", ref.size());
  double num = 0, den = 0, agree = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += std::fabs(got[i] - ref[i]), den += std::fabs(ref[i]);
    agree += (got[i] > 0) == (ref[i] > 0);
  }
  return {den > 0 ? num / den : 0.0, agree / double(got.size())};
}

bool full_sequence_semantics(const TraderCheckpoint& ck) {
  return ck.model.window > 0 && int64_t(ck.train.lookback) >= ck.model.receptive_field();
}

std::vector<double> full_sequence_outputs(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& rows) {
  ATTNLAB_CHECK(!rows.empty() && rows.front() >= ds.features.first_valid && rows.back() < ds.features.rows(),
                "full_sequence_outputs: rows outside the dataset's valid rows");
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  const size_t first = ds.features.first_valid, last = rows.back();
  const Tensor x = ops::unsqueeze(ops::narrow(ds.inputs, 0, int64_t(first), int64_t(last - first + 1)), 0);
  const std::vector<double> all =
      ops::select(ops::select(model.forward_sequence(ops::to_device(x, model.device())), 0, 0), 1, 0)
          .to_vector<double>();
  model.train(was_training);
  std::vector<double> out;
  out.reserve(rows.size());
  for (size_t t : rows) out.push_back(all[t - first]);
  return out;
}

std::string exact_semantics(const TraderCheckpoint& ck) {
  if (full_sequence_semantics(ck))
    return cat("the model's own function: the full-sequence forward with its sliding window (W = ", ck.model.window,
               ", ", ck.model.n_layers, " layers, receptive field ", ck.model.receptive_field(),
               " rows) over every streamed row, in one pass");
  return cat("the exact stream: each tick recomputes the last ", ck.train.lookback,
             " rows from position 0, the windows the model was trained and validated on");
}

}  // namespace attnlab::trading
