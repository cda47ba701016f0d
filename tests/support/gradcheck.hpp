#pragma once
// Gradient check by central finite differences in float64, for any function of tensors.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace testing {

struct GradcheckResult {
  bool ok = true;
  std::string report;  // the first mismatches, for the test log
  int checked = 0;
};

/// Compares autograd's gradient of sum(f(inputs) · R), R a fixed random projection, with
/// (g(x + eps) − g(x − eps)) / 2eps for every element of every input.
inline GradcheckResult gradcheck(const std::function<at::Tensor(const std::vector<at::Tensor>&)>& f,
                                 std::vector<at::Tensor> inputs, double eps = 1e-6,
                                 double atol = 1e-5, double rtol = 1e-3) {
  for (auto& t : inputs) t = t.detach().to(at::kDouble).clone().requires_grad_(true);
  const at::Tensor out = f(inputs);
  const at::Tensor projection =
      at::randn(out.sizes(), at::TensorOptions(at::kDouble)).to(out.device());
  auto projected = [&](const std::vector<at::Tensor>& in) { return (f(in) * projection).sum(); };
  const auto analytic = torch::autograd::grad({projected(inputs)}, inputs, {}, false, false, true);

  GradcheckResult result;
  std::ostringstream report;
  at::NoGradGuard no_grad;
  for (size_t n = 0; n < inputs.size(); ++n) {
    at::Tensor flat = inputs[n].view(-1);
    const at::Tensor grad = analytic[n].defined() ? analytic[n].reshape(-1).cpu()
                                                  : at::zeros({flat.numel()}, at::kDouble);
    for (int64_t e = 0; e < flat.numel(); ++e) {
      const double original = flat[e].item<double>();
      flat[e] = original + eps;
      const double up = projected(inputs).item<double>();
      flat[e] = original - eps;
      const double down = projected(inputs).item<double>();
      flat[e] = original;
      const double numeric = (up - down) / (2 * eps);
      const double got = grad[e].item<double>();
      ++result.checked;
      if (!(std::abs(got - numeric) <= atol + rtol * std::abs(numeric))) {
        if (result.ok) report << "input " << n << ":";
        result.ok = false;
        report << " [" << e << "] autograd " << got << " vs numeric " << numeric << ";";
      }
    }
  }
  result.report = report.str();
  return result;
}

}  // namespace testing
