// The attnlab CLI's subcommands; each file in tools/commands/ registers one group on the app.
#pragma once
#include <CLI/CLI.hpp>

namespace attnlab::cli {

void add_bench(CLI::App& app);
void add_info(CLI::App& app);
void add_train(CLI::App& app);    // GQATrader training (train.cpp)
void add_predict(CLI::App& app);  // latest-window prediction from a checkpoint (predict.cpp)
void add_demo(CLI::App& app);     // the `make run` pipeline: train, evaluate, backtest, report (demo.cpp)
void add_data(CLI::App& app);     // data synth | features | fetch (data.cpp)
void add_convert(CLI::App& app);  // checkpoint KV-head conversion, MHA -> GQA -> MQA (convert.cpp)
void add_backtest(CLI::App& app); // checkpoint + CSV -> timed per-bar inference -> backtest -> report (backtest.cpp)
// The `compare` group with its `attention` subcommand (compare.cpp). Returns the group so that other
// files can register more comparisons on it: add_compare_<x>(*add_compare(app)) — call add_compare once.
CLI::App* add_compare(CLI::App& app);
void add_compare_caches(CLI::App& compare);  // `compare caches`: streaming with each KV-cache strategy (compare_caches.cpp)
void add_compare_objectives(CLI::App& compare);  // `compare objectives`: window vs stream training (compare_objectives.cpp)
void add_stream(CLI::App& app);   // replay a CSV as a live feed through a model (stream.cpp)

}  // namespace attnlab::cli
