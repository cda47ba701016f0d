// A LibTorch program that uses angular as a package: the four losses through their modules,
// each checked against a float64 computation of the README's "The losses", written here from
// scratch.

#include <angular/loss.hpp>
#include <angular/metrics.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace {

constexpr int64_t kClasses = 7, kDim = 16, kBatch = 32;
using angular::kPi;
using Rows = std::vector<std::vector<double>>;

Rows rows_of(const at::Tensor& t) {
  const at::Tensor d = t.detach().to(at::kDouble).contiguous();
  Rows r(d.size(0), std::vector<double>(d.size(1)));
  for (int64_t i = 0; i < d.size(0); ++i)
    for (int64_t j = 0; j < d.size(1); ++j) r[i][j] = d[i][j].item<double>();
  return r;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  return dot(a, b) / (std::sqrt(dot(a, a)) * std::sqrt(dot(b, b)));
}

double theta(double c) { return std::acos(std::clamp(c, -1 + 0x1p-23, 1 - 0x1p-23)); }

/// Mean over the batch of logsumexp_j z_ij − z_{i,y_i}, with z = logit(i, j).
template <class Logit>
double mean_cross_entropy(const std::vector<int64_t>& y, Logit logit) {
  double total = 0;
  for (int64_t i = 0; i < kBatch; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < kClasses; ++j) sum += std::exp(logit(i, j));
    total += std::log(sum) - logit(i, y[i]);
  }
  return total / kBatch;
}

int failures = 0;
void expect(const char* name, const at::Tensor& got, double want) {
  const double value = got.item<double>();
  const bool ok = std::abs(value - want) <= 1e-5 * std::abs(want);
  std::printf("%-8s angular %.8f  float64 %.8f  %s\n", name, value, want, ok ? "ok" : "MISMATCH");
  failures += ok ? 0 : 1;
}

}  // namespace

int main() {
  torch::manual_seed(2024);
  const at::Tensor features = torch::randn({kBatch, kDim});
  const at::Tensor labels = torch::randint(kClasses, {kBatch}, torch::kLong);
  const Rows x = rows_of(features);
  std::vector<int64_t> y(kBatch);
  for (int64_t i = 0; i < kBatch; ++i) y[i] = labels[i].item<int64_t>();

  angular::SoftmaxLoss soft(angular::SoftmaxLossOptions(kClasses, kDim));
  const Rows ws = rows_of(soft->weight);
  expect("Soft", soft(features, labels),
         mean_cross_entropy(y, [&](int64_t i, int64_t j) { return dot(x[i], ws[j]); }));

  angular::CenterLoss center(angular::CenterLossOptions(kClasses, kDim).lambda(0.003).alpha(0.5));
  center->centers.normal_();
  const Rows wc = rows_of(center->weight), c = rows_of(center->centers);
  double center_term = 0;
  for (int64_t i = 0; i < kBatch; ++i)
    for (int64_t d = 0; d < kDim; ++d) center_term += std::pow(x[i][d] - c[y[i]][d], 2);
  expect("Center", center(features, labels),
         mean_cross_entropy(y, [&](int64_t i, int64_t j) { return dot(x[i], wc[j]); }) +
             0.003 * center_term / (2 * kBatch));

  angular::ArcFaceLoss arcface(angular::ArcFaceLossOptions(kClasses, kDim).scale(64).margin(0.5));
  const Rows wf = rows_of(arcface->weight);
  expect("ArcFace", arcface(features, labels),
         mean_cross_entropy(y, [&](int64_t i, int64_t j) {
           const double cj = cosine(x[i], wf[j]);
           if (j != y[i]) return 64 * cj;
           return theta(cj) + 0.5 <= kPi ? 64 * std::cos(theta(cj) + 0.5)
                                         : 64 * (cj - 0.5 * std::sin(0.5));
         }));

  angular::ArcLoss arc(angular::ArcLossOptions(kClasses, kDim).k(4.0));
  const Rows wa = rows_of(arc->weight);
  expect("Arc", arc(features, labels), mean_cross_entropy(y, [&](int64_t i, int64_t j) {
           return 4.0 * (kPi / 2 - theta(cosine(x[i], wa[j])));
         }));

  const at::Tensor cos = angular::functional::arc_logits(arc->cosines(features), 4.0);
  std::printf("Arc logits %s, functional arc_loss %.6f\n",
              cos.argmax(1).equal(arc->logits(features).argmax(1)) ? "consistent" : "INCONSISTENT",
              angular::functional::arc_loss(arc->cosines(features), labels,
                                            angular::ArcLossOptions(kClasses, kDim).k(4.0))
                  .item<double>());
  // The paper's angle statistics on configurations with known answers.
  auto expect_angle = [](const char* name, double got, double want) {
    const bool ok = std::abs(got - want) <= 1e-6;
    std::printf("%-22s %.8f  exact %.8f  %s\n", name, got, want, ok ? "ok" : "MISMATCH");
    failures += ok ? 0 : 1;
  };
  const int64_t classes = 10;
  at::Tensor simplex = torch::eye(classes, torch::kDouble) - 1.0 / classes;  // e_i − centroid
  simplex = simplex / simplex.norm(2, 1, true);
  angular::metrics::AngleStats identical(classes, classes);
  identical.update(simplex.repeat({4, 1}) * 3.0, torch::arange(4 * classes) % classes);
  const auto on_simplex = identical.compute(simplex);
  expect_angle("simplex WInter", on_simplex.w_inter, std::acos(-1.0 / (classes - 1)));
  expect_angle("simplex CInter", on_simplex.c_inter, std::acos(-1.0 / (classes - 1)));
  expect_angle("identical WCIntra", on_simplex.wc_intra, 0.0);
  const at::Tensor orthonormal = torch::eye(classes, torch::kDouble);
  angular::metrics::AngleStats orthogonal(classes, classes);
  orthogonal.update(orthonormal * 2.0, torch::arange(classes));
  const auto on_axes = orthogonal.compute(orthonormal);
  expect_angle("orthogonal WInter", on_axes.w_inter, kPi / 2);
  expect_angle("orthogonal CInter", on_axes.c_inter, kPi / 2);
  expect_angle("identical WCIntra", on_axes.wc_intra, 0.0);

  std::printf("%s\n", failures == 0 ? "all four losses and the angle metrics match"
                                     : "some values do not match");
  return failures == 0 ? 0 : 1;
}
