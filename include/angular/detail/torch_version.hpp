#pragma once
// The LibTorch versions whose differences angular's code meets.

#include <torch/version.h>

/// LibTorch 2.15 or newer: at::clamp passes no gradient at its bounds, and c10d's flat
/// collectives are all_gather_single / reduce_scatter_single (before: _allgather_base,
/// _reduce_scatter_base).
#define ANGULAR_TORCH_2_15_OR_NEWER (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 15))
