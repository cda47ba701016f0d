#pragma once
// The margins' settings that the CPU and CUDA benchmarks run with (the papers' defaults; k = 4 for Arc).

namespace bench {

constexpr double kArcK = 4.0, kScale = 64.0, kMargin = 0.5;

}  // namespace bench
