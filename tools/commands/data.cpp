// `attnlab data synth|features|fetch`: the market-data layer from the command line — seeded synthetic
// OHLCV with a planted signal, the feature matrix of one CSV, and cached Bybit kline downloads.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "kernels/error.h"
#include "tools/commands/commands.h"
#include "trading/data/bybit.h"
#include "trading/data/csv.h"
#include "trading/data/features.h"
#include "trading/data/synth.h"
#include "trading/data/timeutil.h"

namespace attnlab::cli {

namespace {

void add_synth(CLI::App& data_cmd) {
  struct Args {
    std::string out, interval = "1h", signal = "lead-lag";
    size_t symbols = 3, bars = 2000, signal_bars = 1;
    uint64_t seed = 42;
    double beta = 0.3, noise = 0.01;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = data_cmd.add_subcommand(
      "synth", "Write seeded synthetic OHLCV CSVs (one per symbol) with a planted signal: lead-lag "
               "(r_i[t+1] = beta * r_0[t] + noise for followers i >= 1) or momentum (each symbol "
               "r[t+1] = beta * (r[t-k+1] + ... + r[t]) + noise, learnable from its own features)");
  cmd->add_option("--out", args->out, "Output directory (SYN0.csv, SYN1.csv, ...)")->required();
  cmd->add_option("--symbols", args->symbols, "Number of symbols (lead-lag: >= 2, symbol 0 leads)")
      ->capture_default_str()->check(CLI::Range(size_t(1), size_t(1000)));
  cmd->add_option("--signal", args->signal, "Planted signal")->capture_default_str()
      ->check(CLI::IsMember({"lead-lag", "momentum"}));
  cmd->add_option("--signal-bars", args->signal_bars, "k: the signal sums the last k returns (momentum needs "
                  "|beta| * k < 1)")->capture_default_str()->check(CLI::Range(size_t(1), size_t(1000)));
  cmd->add_option("--bars", args->bars, "Bars per symbol")->capture_default_str()->check(CLI::Range(size_t(2), size_t(100000000)));
  cmd->add_option("--interval", args->interval, "Bar length")->capture_default_str()->check(CLI::IsMember({"1h", "1d"}));
  cmd->add_option("--seed", args->seed, "Random seed (same seed, same data on every machine)")->capture_default_str();
  cmd->add_option("--beta", args->beta, "Planted signal coefficient")->capture_default_str();
  cmd->add_option("--noise", args->noise, "Per-bar std of the unpredictable log-return part")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->callback([args] {
    data::SynthConfig sc;
    sc.n_symbols = args->symbols;
    sc.n_bars = args->bars;
    sc.bar_ms = args->interval == "1d" ? data::kMsPerDay : data::kMsPerHour;
    sc.seed = args->seed;
    sc.beta = args->beta;
    sc.noise_vol = args->noise;
    sc.signal = args->signal == "momentum" ? data::SignalKind::OwnMomentum : data::SignalKind::LeadLag;
    sc.signal_lookback = args->signal_bars;
    const data::SynthResult r = data::generate_synthetic(sc);
    std::error_code ec;
    std::filesystem::create_directories(args->out, ec);
    ATTNLAB_CHECK(!ec, args->out, ": cannot create directory: ", ec.message());
    for (const auto& s : r.series) {
      const std::string path = (std::filesystem::path(args->out) / (s.symbol + ".csv")).string();
      data::write_ohlcv_csv(path, s);
      std::cout << "wrote " << path << " (" << s.size() << " bars, " << data::format_time_iso(s.ts_ms.front())
                << " .. " << data::format_time_iso(s.ts_ms.back()) << ")\n";
    }
    auto sum = [&](const char* r) {  // "r[t]" or "(r[t-k+1] + ... + r[t])"
      const std::string last = std::string(r) + "[t]";
      return args->signal_bars == 1 ? last
                                    : "(" + std::string(r) + "[t-" + std::to_string(args->signal_bars - 1) +
                                          "] + ... + " + last + ")";
    };
    if (sc.signal == data::SignalKind::LeadLag)
      std::cout << "planted signal: lead-lag, r_i[t+1] = beta * " << sum("r_0") << " + noise for SYN1..SYN"
                << args->symbols - 1;
    else
      std::cout << "planted signal: momentum, r_i[t+1] = beta * " << sum("r_i") << " + noise";
    std::cout << "; beta = " << r.beta << ", noise_vol = " << r.noise_vol << "\n";
  });
}

void add_features(CLI::App& data_cmd) {
  struct Args {
    std::string data, out, rsi_method = "wilder";
    size_t vol_window = 24, rsi = 14, momentum = 24;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = data_cmd.add_subcommand("features", "Compute the causal feature matrix of an OHLCV CSV and write it as CSV "
                                                  "(time, ts_ms, one column per feature; warm-up rows hold nan)");
  cmd->add_option("--data", args->data, "OHLCV CSV file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "Output CSV file")->required();
  cmd->add_option("--vol-window", args->vol_window, "Window of volatility and of the volume/price MA ratios")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--rsi", args->rsi, "RSI period")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--rsi-method", args->rsi_method, "RSI averaging: wilder (smoothed) or simple (the seeds' mean)")
      ->capture_default_str()->check(CLI::IsMember({"wilder", "simple"}));
  cmd->add_option("--momentum", args->momentum, "Momentum lag in bars")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->callback([args] {
    const data::OhlcvSeries s = data::read_ohlcv_csv(args->data);
    data::FeatureConfig fc;
    fc.volatility_window = fc.volume_ma_window = fc.price_ma_window = args->vol_window;
    fc.rsi_period = args->rsi;
    fc.rsi_method = args->rsi_method == "simple" ? data::RsiMethod::Simple : data::RsiMethod::Wilder;
    fc.momentum_lag = args->momentum;
    const data::FeatureSet fs = data::compute_features(s, fc);
    const std::filesystem::path out(args->out);
    if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
    std::ofstream f(args->out);
    ATTNLAB_CHECK(f.good(), args->out, ": cannot open for writing");
    f << "time,ts_ms";
    for (const auto& n : fs.names) f << "," << n;
    f << "\n";
    char buf[40];
    for (size_t t = 0; t < fs.rows(); ++t) {
      f << data::format_time_iso(fs.ts_ms[t]) << "," << fs.ts_ms[t];
      for (size_t c = 0; c < fs.cols(); ++c) {
        const double v = fs.at(t, c);
        if (std::isfinite(v)) {
          std::snprintf(buf, sizeof buf, "%.17g", v);
          f << "," << buf;
        } else {
          f << ",nan";
        }
      }
      f << "\n";
    }
    f.close();
    ATTNLAB_CHECK(!f.fail(), args->out, ": write failed");
    std::cout << "wrote " << args->out << ": " << fs.rows() << " rows x " << fs.cols() << " features (";
    for (size_t c = 0; c < fs.cols(); ++c) std::cout << (c ? ", " : "") << fs.names[c];
    std::cout << ")\n";
    if (fs.first_valid < fs.rows())
      std::cout << "first valid row: " << fs.first_valid << " (" << data::format_time_iso(fs.ts_ms[fs.first_valid])
                << "); " << fs.rows() - fs.first_valid << " complete rows\n";
    else
      std::cout << "first valid row: none (no row has every feature)\n";
  });
}

void add_fetch(CLI::App& data_cmd) {
  struct Args {
    std::string symbol = "BTCUSDT", category = "linear", interval = "60", start, end, out;
    std::string base_url = data::BybitConfig{}.base_url;
    int max_attempts = data::BybitConfig{}.max_attempts;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = data_cmd.add_subcommand(
      "fetch", "Download closed Bybit klines for [start, end] into a CSV cache (only bars missing from the cache "
               "are requested)");
  cmd->add_option("--symbol", args->symbol, "Bybit symbol")->capture_default_str();
  cmd->add_option("--category", args->category, "Market category")->capture_default_str()
      ->check(CLI::IsMember({"spot", "linear", "inverse"}));
  cmd->add_option("--interval", args->interval, "Kline interval: 1 3 5 15 30 60 120 240 360 720 D W M")
      ->capture_default_str()->check(CLI::IsMember({"1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D",
                                                    "W", "M"}));
  cmd->add_option("--start", args->start, "First candle start, ISO date or datetime (UTC), e.g. 2024-01-01")->required();
  cmd->add_option("--end", args->end, "Last candle must end by this time, ISO (UTC); default: now");
  cmd->add_option("--out", args->out, "CSV file: the cache read first and written back merged")->required();
  cmd->add_option("--base-url", args->base_url, "API base URL")->capture_default_str();
  cmd->add_option("--max-attempts", args->max_attempts, "Tries per request (retries back off exponentially)")
      ->capture_default_str()->check(CLI::Range(1, 20));
  cmd->callback([args] {
    const int64_t start_ms = data::parse_time_ms(args->start);
    std::optional<int64_t> end_ms;
    if (!args->end.empty()) end_ms = data::parse_time_ms(args->end);
    ATTNLAB_CHECK(!end_ms || *end_ms >= start_ms, "--end (", args->end, ") is before --start (", args->start, ")");
    const std::filesystem::path out(args->out);
    if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
    size_t cached = 0;
    if (std::filesystem::exists(out)) cached = data::read_ohlcv_csv(args->out).size();
    data::BybitConfig bc;
    bc.base_url = args->base_url;
    bc.max_attempts = args->max_attempts;
    data::BybitClient client(bc);
    data::OhlcvSeries s;
    try {
      s = client.fetch_klines_cached(args->category, args->symbol, args->interval, start_ms, end_ms, args->out);
    } catch (const std::exception& e) {
      throw Error("fetching " + args->category + " " + args->symbol + " interval " + args->interval + " from " +
                  args->base_url + " failed after " + std::to_string(client.requests_sent()) + " request(s): " +
                  e.what());
    }
    const size_t total = std::filesystem::exists(out) ? data::read_ohlcv_csv(args->out).size() : 0;
    std::cout << "fetched " << s.size() << " bars in [" << args->start << ", " << (args->end.empty() ? "now" : args->end)
              << "] with " << client.requests_sent() << " request(s)";
    if (!s.empty())
      std::cout << " (" << data::format_time_iso(s.ts_ms.front()) << " .. " << data::format_time_iso(s.ts_ms.back())
                << ")";
    std::cout << "\ncache " << args->out << ": " << cached << " -> " << total << " bars\n";
  });
}

}  // namespace

void add_data(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "Market data: synthetic series, feature matrices, Bybit downloads");
  cmd->require_subcommand(1);
  add_synth(*cmd);
  add_features(*cmd);
  add_fetch(*cmd);
}

}  // namespace attnlab::cli
