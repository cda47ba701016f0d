// angular-train: one reference training run (a CIFAR-style ResNet with one of angular's
// losses), writing metrics.csv, summary.json, checkpoints, histograms and test features.

#include "cli.hpp"

int main(int argc, char** argv) {
  train::Options options;
  CLI::App app{"Train a ResNet with one of angular's losses and measure its angles", "angular-train"};
  train::add_run_options(app, options);
  app.add_option("--loss", options.loss,
                 "soft, center, arcface, arc (the paper's), cosface, normface, combined, sphereface, "
                 "subcenter-arcface, adaface or curricularface")
      ->required()
      ->check(CLI::IsMember(train::loss_names()));
  return train::run_cli(app, argc, argv, [&] {
    const train::RunResult result = train::Trainer(options).run();
    if (!result.written) return;  // rank 0 of a data-parallel run reports
    const train::EpochRow& last = result.rows.back();
    std::printf("%s: test accuracy %.4f (error %.2f %%), MAP@R %.4f, WCIntra %.4f, WInter %.4f, CInter %.4f; %s\n",
                options.loss.c_str(), last.test_acc, 100 * (1 - last.test_acc), last.map_at_r, last.wc_intra,
                last.w_inter, last.c_inter, options.out.c_str());
  });
}
