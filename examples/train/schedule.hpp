#pragma once
// Leslie Smith's one-cycle policy (2018), as torch.optim.lr_scheduler.OneCycleLR computes it
// with its defaults: the learning rate rises from max/25 to max over the first 30 % of the
// steps and falls to max/25/1e4, both on cosine curves; momentum moves the opposite way
// between 0.95 and 0.85.

#include <angular/constants.hpp>

#include <cmath>
#include <cstdint>

namespace train {

struct OneCycle {
  int64_t total_steps;
  double max_lr;
  double pct_start = 0.3, div_factor = 25, final_div_factor = 1e4;
  double base_momentum = 0.85, max_momentum = 0.95;

  double lr(int64_t step) const {
    const double initial = max_lr / div_factor, final_lr = initial / final_div_factor;
    return phase(step, initial, max_lr, max_lr, final_lr);
  }
  double momentum(int64_t step) const {
    return phase(step, max_momentum, base_momentum, base_momentum, max_momentum);
  }

 private:
  static double anneal(double start, double end, double t) {
    return end + (start - end) / 2 * (1 + std::cos(angular::kPi * t));
  }
  double phase(int64_t step, double a0, double a1, double b0, double b1) const {
    const double end_up = pct_start * static_cast<double>(total_steps) - 1;
    const double s = static_cast<double>(step);
    if (s <= end_up) return anneal(a0, a1, end_up > 0 ? s / end_up : 1.0);
    const double down = static_cast<double>(total_steps) - 1 - end_up;
    return anneal(b0, b1, down > 0 ? (s - end_up) / down : 1.0);
  }
};

}  // namespace train
