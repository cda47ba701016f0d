// angular-compare: the losses compared on the same data, seed and budget (train/cli.cpp).

#include "cli.hpp"

int main(int argc, char** argv) { return train::compare_main(argc, argv); }
