#pragma once
// Independent float64 oracle of the losses as the README's "The losses" defines them, written
// as plain loops over std::vector so it shares no code with the library but its constants
// (nor with ATen's loss kernels).

#include <angular/detail/constants.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace oracle {

using Matrix = std::vector<std::vector<double>>;
using angular::kPi;

inline Matrix to_matrix(const at::Tensor& t) {
  const at::Tensor d = t.to(at::kDouble).cpu().contiguous();
  Matrix m(d.size(0), std::vector<double>(d.size(1)));
  auto a = d.accessor<double, 2>();
  for (int64_t i = 0; i < d.size(0); ++i)
    for (int64_t j = 0; j < d.size(1); ++j) m[i][j] = a[i][j];
  return m;
}

inline std::vector<int64_t> to_labels(const at::Tensor& t) {
  const at::Tensor c = t.cpu().contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

inline std::vector<double> to_vector(const at::Tensor& t) {
  if (!t.defined()) return {};
  const at::Tensor c = t.to(at::kDouble).cpu().contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

inline at::Tensor to_tensor(const std::vector<double>& v) {
  return at::tensor(v, at::kDouble);
}

inline at::Tensor to_tensor(const Matrix& m) {
  std::vector<double> flat;
  for (const auto& row : m) flat.insert(flat.end(), row.begin(), row.end());
  const int64_t cols = m.empty() ? 0 : static_cast<int64_t>(m[0].size());
  return at::tensor(flat, at::kDouble).view({static_cast<int64_t>(m.size()), cols});
}

inline Matrix linear(const Matrix& x, const Matrix& w) {
  Matrix z(x.size(), std::vector<double>(w.size(), 0.0));
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t j = 0; j < w.size(); ++j)
      for (size_t d = 0; d < w[j].size(); ++d) z[i][j] += x[i][d] * w[j][d];
  return z;
}

inline std::vector<double> normalized(std::vector<double> v) {
  double n = 0;
  for (double e : v) n += e * e;
  n = std::max(std::sqrt(n), 1e-12);
  for (double& e : v) e /= n;
  return v;
}

inline Matrix cosines(const Matrix& x, const Matrix& w) {
  Matrix xn, wn;
  for (const auto& r : x) xn.push_back(normalized(r));
  for (const auto& r : w) wn.push_back(normalized(r));
  return linear(xn, wn);
}

inline double clamped_acos(double c) {
  return std::acos(std::min(std::max(c, -1 + 0x1p-23), 1 - 0x1p-23));
}

inline Matrix arc_logits(Matrix cos, double k) {
  for (auto& row : cos)
    for (double& c : row) c = k * (kPi / 2 - clamped_acos(c));
  return cos;
}

inline Matrix arcface_logits(Matrix cos, const std::vector<int64_t>& y, double s, double m,
                             int64_t ignore_index = -100) {
  for (size_t i = 0; i < cos.size(); ++i) {
    for (size_t j = 0; j < cos[i].size(); ++j) {
      const double c = cos[i][j];
      double z = c;
      if (y[i] != ignore_index && static_cast<int64_t>(j) == y[i]) {
        const double theta = clamped_acos(c);
        z = theta + m <= kPi ? std::cos(theta + m) : c - m * std::sin(m);
      }
      cos[i][j] = s * z;
    }
  }
  return cos;
}

struct CrossEntropy {
  int reduction = 1;  // 0 none, 1 mean, 2 sum (at::Reduction)
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  std::vector<double> class_weight;  // empty: all ones
};

/// Per-sample terms and the reduction of PyTorch's cross-entropy with class indices:
/// (1 − ε)·w_y·(−log p_y) + (ε/C)·Σ_j w_j·(−log p_j); the mean divides by Σ w_y over kept rows.
inline at::Tensor cross_entropy(const Matrix& z, const std::vector<int64_t>& y,
                                const CrossEntropy& ce) {
  std::vector<double> per_sample(z.size(), 0.0);
  double weight_total = 0;
  for (size_t i = 0; i < z.size(); ++i) {
    if (y[i] == ce.ignore_index) continue;
    const size_t classes = z[i].size();
    auto w = [&](size_t j) { return ce.class_weight.empty() ? 1.0 : ce.class_weight[j]; };
    double top = -INFINITY;
    for (double v : z[i]) top = std::max(top, v);
    double sum = 0;
    for (double v : z[i]) sum += std::exp(v - top);
    const double lse = top + std::log(sum);
    double smooth = 0;
    for (size_t j = 0; j < classes; ++j) smooth += w(j) * (lse - z[i][j]);
    const double nll = w(y[i]) * (lse - z[i][y[i]]);
    per_sample[i] = (1 - ce.label_smoothing) * nll + ce.label_smoothing / classes * smooth;
    weight_total += w(y[i]);
  }
  if (ce.reduction == 0) return to_tensor(per_sample);
  double total = 0;
  for (double v : per_sample) total += v;
  return at::scalar_tensor(ce.reduction == 2 ? total : total / weight_total, at::kDouble);
}

/// ½‖x_i − c_{y_i}‖² per sample, reduced like the cross-entropy without class weights.
inline at::Tensor center_term(const Matrix& x, const Matrix& centers, const std::vector<int64_t>& y,
                              int reduction, int64_t ignore_index = -100) {
  std::vector<double> per_sample(x.size(), 0.0);
  double kept = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (y[i] == ignore_index) continue;
    for (size_t d = 0; d < x[i].size(); ++d) {
      const double diff = x[i][d] - centers[y[i]][d];
      per_sample[i] += 0.5 * diff * diff;
    }
    kept += 1;
  }
  if (reduction == 0) return to_tensor(per_sample);
  double total = 0;
  for (double v : per_sample) total += v;
  return at::scalar_tensor(reduction == 2 ? total : total / kept, at::kDouble);
}

}  // namespace oracle
