// attnlab — the command-line entry point. Subcommands live in tools/commands/.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "kernels/cpu/parallel.h"
#include "kernels/error.h"
#include "tools/commands/commands.h"

// OpenMP threads spin while they wait for work by default. Our steps are many short parallel regions
// (a decode step is dozens), and a spinning thread takes the core the other one needs: on a 2-core box
// `bench stream` showed p90 tick latencies of 45-60 ms with spinning against 4 ms without. libgomp reads
// OMP_WAIT_POLICY when it loads, before main, so the only way to default it is to set it and start
// again; a user's own setting is left alone.
void default_openmp_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

int main(int argc, char** argv) {
  default_openmp_wait_policy(argv);
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
  attnlab::cli::add_compare_objectives(*compare);
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
