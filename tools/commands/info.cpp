// `attnlab info`: build configuration and the machine, for bug reports and benchmark context.
#include <iostream>
#include <thread>

#include "kernels/cpu/parallel.h"
#include "tools/commands/commands.h"

namespace attnlab::cli {

void add_info(CLI::App& app) {
  auto* info = app.add_subcommand("info", "Show the build configuration and threads");
  info->callback([] {
    std::cout << "attnlab 0.1.0\n"
              << "  hardware threads : " << std::thread::hardware_concurrency() << "\n"
              << "  compute threads  : " << kernels::get_num_threads() << " (OpenMP and OpenBLAS)\n"
#ifdef ATTNLAB_WITH_CUDA
              << "  CUDA backend     : compiled in\n";
#else
              << "  CUDA backend     : not compiled (configure with -DATTNLAB_CUDA=ON and nvcc)\n";
#endif
  });
}

}  // namespace attnlab::cli
