// angular-train: one reference training run (train/cli.cpp).

#include "cli.hpp"

int main(int argc, char** argv) { return train::train_main(argc, argv); }
