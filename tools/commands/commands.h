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

}  // namespace attnlab::cli
