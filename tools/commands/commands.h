// The attnlab CLI's subcommands; each file in tools/commands/ registers one group on the app.
#pragma once
#include <CLI/CLI.hpp>

namespace attnlab::cli {

void add_bench(CLI::App& app);
void add_info(CLI::App& app);

}  // namespace attnlab::cli
