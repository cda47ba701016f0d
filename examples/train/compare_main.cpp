// angular-compare: the four losses on the same data, seed and budget, and the paper-style
// table of test error and angles, printed and written as compare.csv and compare.md.

#include "cli.hpp"

#include <chrono>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <string>

int main(int argc, char** argv) {
  train::Options options;
  std::vector<std::string> losses = {"soft", "center", "arcface", "arc"};
  CLI::App app{"Train the same ResNet with each of the four losses and compare them", "angular-compare"};
  train::add_run_options(app, options);
  app.add_option("--losses", losses, "which losses (default: the paper's four)")->check(CLI::IsMember(train::loss_names()));
  return train::run_cli(app, argc, argv, [&] {
    // Each loss's run would start a process group of its own on the same port.
    if (const auto env = angular::distributed::launch_environment(); env && env->world_size > 1)
      throw std::invalid_argument("angular-compare runs as one process (WORLD_SIZE is " +
                                  std::to_string(env->world_size) + "); start angular-train under torchrun instead");
    const std::string root = options.out;
    std::ostringstream csv, md;
    csv << "loss,test_error_percent,map_at_r,w_inter,c_inter,wc_intra,seconds\n";
    md << "| loss | test error % | MAP@R | WInter | CInter | WCIntra | seconds |\n|---|---|---|---|---|---|---|\n";
    std::printf("%-17s %12s %8s %8s %8s %8s %8s\n", "loss", "test error %", "MAP@R", "WInter", "CInter", "WCIntra",
                "seconds");
    for (const auto& loss : losses) {
      train::Options run = options;
      run.loss = loss;
      run.out = (std::filesystem::path(root) / loss).string();
      const auto start = std::chrono::steady_clock::now();
      const train::RunResult result = train::Trainer(run).run();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const auto& last = result.rows.back();
      const double error = 100 * (1 - last.test_acc);
      char line[256];
      std::snprintf(line, sizeof line, "%-17s %12.2f %8.4f %8.4f %8.4f %8.4f %8.1f\n", loss.c_str(), error,
                    last.map_at_r, last.w_inter, last.c_inter, last.wc_intra, seconds);
      std::fputs(line, stdout);
      std::fflush(stdout);
      csv << loss << ',' << error << ',' << last.map_at_r << ',' << last.w_inter << ',' << last.c_inter << ','
          << last.wc_intra << ',' << seconds << "\n";
      md << "| " << loss << " | " << error << " | " << last.map_at_r << " | " << last.w_inter << " | "
         << last.c_inter << " | " << last.wc_intra << " | " << seconds << " |\n";
    }
    train::write_atomically(std::filesystem::path(root) / "compare.csv", csv.str());
    train::write_atomically(std::filesystem::path(root) / "compare.md", md.str());
  });
}
