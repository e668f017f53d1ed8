// attnlab — the command-line entry point. Subcommands live in tools/commands/.
#include <iostream>

#include "kernels/cpu/parallel.h"
#include "kernels/error.h"
#include "tools/commands/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"attnlab: attention models from scratch (tensor, autograd, FlashAttention, KV caches) "
               "and the trading pipeline built on them"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads for OpenMP and OpenBLAS (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.parse_complete_callback([&] {
    if (threads > 0) attnlab::kernels::set_num_threads(threads);
  });
  attnlab::cli::add_info(app);
  attnlab::cli::add_bench(app);
  attnlab::cli::add_train(app);
  attnlab::cli::add_predict(app);
  attnlab::cli::add_demo(app);
  attnlab::cli::add_data(app);
  attnlab::cli::add_convert(app);
  attnlab::cli::add_backtest(app);
  // `compare attention`; further comparisons register on the returned group: add_compare_<x>(*compare).
  CLI::App* compare = attnlab::cli::add_compare(app);
  attnlab::cli::add_compare_caches(*compare);
  attnlab::cli::add_stream(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const attnlab::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
