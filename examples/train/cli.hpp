#pragma once
// The programs angular-train and angular-compare (cli.cpp): their main()s call these.

namespace train {

/// angular-train: one reference training run (a CIFAR-style ResNet with one of angular's
/// losses), writing metrics.csv, summary.json, checkpoints, histograms and test features.
int train_main(int argc, char** argv);

/// angular-compare: the chosen losses (the paper's four by default) on the same data, seed and
/// budget, and the paper-style table of test error and angles, printed and written as
/// compare.csv and compare.md.
int compare_main(int argc, char** argv);

}  // namespace train
