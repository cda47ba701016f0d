#pragma once
// Every margin's loss over cosines and over features + class vectors, from its MarginTraits
// entry: the inputs checked and turned into a problem (the margin's numbers and per-row
// parameters), which every face computes the same way: the C++ functional layer on the path
// that kernel_path() picks (detail/margin_cross_entropy.hpp, detail/linear_margin_cross_entropy.hpp),
// the operators on their kernels (ops/kernels.hpp).

#include <angular/detail/class_sampling.hpp>
#include <angular/detail/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/detail/margin_traits.hpp>

namespace angular::detail {

/// The problem of cosines cos [B, C·K] (K = the margin's sub-centers) and labels [B] (int64),
/// with the per-row inputs its margin reads (`in.norms` [B] for SphereFace, with their
/// gradient, and for AdaFace, without), after checking them all.
template <class Options>
CosineProblem cosine_problem(const at::Tensor& cos, const at::Tensor& target, const Options& options,
                             const MarginInputs& in = {}) {
  using Traits = MarginTraits<Options>;
  const CrossEntropySpec spec = cross_entropy_spec(options);
  const int64_t sub_centers = Traits::sub_centers(options);
  check_cosine_loss_inputs(cos, target, spec, sub_centers);
  TORCH_CHECK(options.sample_rate() == 1.0, "angular: sample_rate (class sampling) applies to the features-level "
              "losses (linear_*, the modules); a loss over cosines takes every class, got sample_rate = ",
              options.sample_rate());
  if constexpr (Traits::kRowInput == RowInput::norms || Traits::kRowInput == RowInput::norm_statistics)
    check_row_vector(in.norms, "norms", cos, "cos");
  return {cos,          Traits::row_params(options, in, cos, "cos"), target, Traits::kKind,
          Traits::params(options, cos.size(1) / sub_centers), spec};
}

/// The problem of features [B, D] and class vectors `weight` [C·K, D] (one dtype and device)
/// with labels, whose inputs check_feature_loss_inputs has passed with `spec`; the norms its
/// margin reads are the features'.
template <class Options>
LinearProblem checked_linear_problem(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                                     const Options& options, const CrossEntropySpec& spec, MarginInputs in = {}) {
  using Traits = MarginTraits<Options>;
  if constexpr (Traits::kRowInput == RowInput::norm_statistics) {
    if (!in.norms.defined()) in.norms = detached_norms(features);
  }
  LinearProblem p;
  p.features = features;
  p.weight = weight;
  p.row_params = Traits::row_params(options, in, features, "features");
  p.target = target;
  p.margin = Traits::kKind;
  p.params = Traits::params(options, weight.size(0) / Traits::sub_centers(options));
  p.spec = spec;
  p.normalize = Traits::kNormalized;
  p.chunk_rows = options.chunk_rows();
  TORCH_CHECK(options.chunk_classes() >= 0, "angular: chunk_classes must be >= 1, or 0 for automatic, got ",
              options.chunk_classes());
  p.chunk_classes = options.chunk_classes();
  return p;
}

/// checked_linear_problem after checking the inputs.
template <class Options>
LinearProblem linear_problem(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                             const Options& options, const MarginInputs& in = {}) {
  const CrossEntropySpec spec = cross_entropy_spec(options);
  check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows(),
                            MarginTraits<Options>::sub_centers(options));
  return checked_linear_problem(features, weight, target, options, spec, in);
}

/// The margin cross-entropy of cosines (see cosine_problem).
template <class Options>
at::Tensor cosine_margin_loss(const at::Tensor& cos, const at::Tensor& target, const Options& options,
                              const MarginInputs& in = {}) {
  return margin_cross_entropy(cosine_problem(cos, target, options, in));
}

/// The loss of a checked features-level problem, over the classes that options' class
/// sampling keeps (all of them at sample_rate 1), with the margin's numbers of all C classes.
template <class Options>
at::Tensor sampled_linear_loss(LinearProblem p, const Options& options) {
  const ClassSampling sampling = class_sampling(options);
  check_class_sampling(sampling);
  if (!sampling.active()) return linear_margin_cross_entropy(p);
  const int64_t K = p.params.sub_centers, classes = p.weight.size(0) / K;
  const at::Tensor labelled = p.target != p.spec.ignore_index;
  const at::Tensor positives = local_positives(p.target.masked_select(labelled), 0, classes);
  const at::Tensor kept = kept_classes(positives, classes, sampling.rate, sampling.generator);
  write_record(sampling, kept, 0);
  if (p.spec.class_weight.defined())
    p.spec.class_weight = p.spec.class_weight.index_select(0, kept.to(p.spec.class_weight.device()));
  p.weight = kept_vectors(p.weight, kept, K);
  p.target = relabel(p.target, positives, labelled, p.spec.ignore_index);
  p.spec.ignore_index = kept_ignore_index(p.spec.ignore_index);
  return linear_margin_cross_entropy(p);
}

/// The margin cross-entropy of features [B, D] and class vectors `weight` [C·K, D] (one dtype
/// and device) without building the [B, C·K] cosines, in row chunks of options.chunk_rows();
/// the norms its margin reads are the features'.
template <class Options>
at::Tensor feature_margin_loss(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                               const Options& options, const MarginInputs& in = {}) {
  return sampled_linear_loss(linear_problem(features, weight, target, options, in), options);
}

}  // namespace angular::detail
