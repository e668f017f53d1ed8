// `attnlab bench backtest`: the engine alone on precomputed predictions, in asset-bars per second
// (target: at least 10 million on the 2-core reference machine).
#include "tools/bench/benches.h"
#include "tools/bench/timing.h"
#include "trading/backtest/engine.h"

namespace attnlab::bench {

nlohmann::json bench_backtest(const BenchOptions& opt) {
  Table table({"assets", "bars", "asset-bars/s (millions)"});
  const std::vector<std::pair<int, int>> shapes =
      opt.quick ? std::vector<std::pair<int, int>>{{100, 1000}} : std::vector<std::pair<int, int>>{{1, 100000}, {100, 10000}, {1000, 10000}};
  for (auto [assets, bars] : shapes) {
    const double rate = backtest::bench_backtest_asset_bars_per_second(assets, bars, opt.quick ? 1 : 3);
    table.add({std::to_string(assets), std::to_string(bars), fmt(rate / 1e6, 1)},
              {{"assets", assets}, {"bars", bars}, {"asset_bars_per_s", rate}});
  }
  if (!opt.json) table.print("backtest engine throughput (precomputed predictions, trade log off; target >= 10 M)");
  return {{"name", "backtest"}, {"rows", table.json()}};
}

}  // namespace attnlab::bench
