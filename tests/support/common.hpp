#pragma once
// Small helpers shared by the test files.

#include "oracle.hpp"

#include <angular/loss.hpp>
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <iostream>
#include <string>
#include <vector>

namespace testing {

/// Ends a test that cannot run here: CTest reports it skipped (tests/CMakeLists.txt matches
/// this line), Catch2 2, which has no skip, a pass.
inline void skip(const std::string& reason) { std::cout << "SKIPPED: " << reason << std::endl; }

/// One combination of the cross-entropy settings, applied alike to the library's options,
/// the oracle and torch::nn::functional::cross_entropy.
/// Whether an options type has angular's class-sampling settings (torch::nn's have not).
template <class Options, class = void>
constexpr bool kSamples = false;
template <class Options>
constexpr bool kSamples<Options, std::void_t<decltype(std::declval<Options&>().sample_rate(1.0))>> = true;

struct CrossEntropyCase {
  std::string name;
  angular::reduction_t reduction = torch::kMean;
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  at::Tensor class_weight;
  // Class sampling (features-level losses): the rate, the generator, the record of the kept.
  double sample_rate = 1.0;
  at::Generator generator = at::Generator();
  at::Tensor sampled_classes = at::Tensor();

  template <class Options>
  Options apply(Options options) const {
    options.reduction(reduction).ignore_index(ignore_index).label_smoothing(label_smoothing);
    if constexpr (kSamples<Options>) options.sample_rate(sample_rate).generator(generator).sampled_classes(sampled_classes);
    if (class_weight.defined()) options.weight(class_weight);
    return options;
  }
  oracle::CrossEntropy oracle() const {
    return {static_cast<int>(torch::enumtype::reduction_get_enum(reduction)), ignore_index,
            label_smoothing, oracle::to_vector(class_weight)};
  }
};

/// Every reduction, each with: nothing else, ignore_index, smoothing, class weights, all three.
inline std::vector<CrossEntropyCase> cross_entropy_cases(int64_t classes) {
  const at::Tensor weights = at::linspace(0.5, 2.0, classes, at::kDouble);
  std::vector<CrossEntropyCase> cases;
  const std::vector<std::pair<std::string, angular::reduction_t>> reductions = {
      {"mean", torch::kMean}, {"sum", torch::kSum}, {"none", torch::kNone}};
  for (const auto& [name, reduction] : reductions) {
    cases.push_back({name, reduction, -100, 0.0, {}});
    cases.push_back({name + "+ignore", reduction, 1, 0.0, {}});
    cases.push_back({name + "+smoothing", reduction, -100, 0.2, {}});
    cases.push_back({name + "+weights", reduction, -100, 0.0, weights});
    cases.push_back({name + "+all", reduction, 1, 0.1, weights});
  }
  return cases;
}

/// Labels in [0, C) with a fixed seed; every third label is 1 so ignore_index = 1 matters.
inline at::Tensor labels(int64_t batch, int64_t classes, uint64_t seed = 7) {
  at::Tensor y = at::randint(classes, {batch}, at::make_generator<at::CPUGeneratorImpl>(seed),
                             at::kLong);
  if (classes > 1) y.index_put_({at::arange(0, batch, 3)}, 1);
  return y;
}

inline at::Tensor uniform(at::IntArrayRef shape, double lo, double hi, uint64_t seed) {
  return at::rand(shape, at::make_generator<at::CPUGeneratorImpl>(seed), at::kDouble) * (hi - lo) +
         lo;
}

/// Collects the warnings (TORCH_WARN) raised while it is installed.
struct CapturedWarnings : c10::WarningHandler {
  std::vector<std::string> messages;
  void process(const c10::Warning& warning) override { messages.push_back(warning.msg()); }
};

inline bool close(const at::Tensor& got, const at::Tensor& want, double rtol, double atol) {
  return got.sizes() == want.sizes() &&
         at::allclose(got.to(at::kDouble).cpu(), want.to(at::kDouble).cpu(), rtol, atol,
                      /*equal_nan=*/true);
}

}  // namespace testing

/// Asserts that `expr` throws c10::Error whose message contains `needle`.
#define CHECK_ANGULAR_ERROR(expr, needle) \
  CHECK_THROWS_WITH(expr, Catch::Matchers::Contains(needle))
