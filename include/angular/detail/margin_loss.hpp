#pragma once
// Every margin's loss over cosines and over features + class vectors, from its MarginTraits
// entry: the inputs checked, the margin's numbers and per-row parameters, then the path that
// kernel_path() picks (detail/margin_cross_entropy.hpp, detail/linear_margin_cross_entropy.hpp).

#include <angular/detail/class_sampling.hpp>
#include <angular/detail/linear_margin_cross_entropy.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/detail/margin_traits.hpp>

namespace angular::detail {

/// The margin cross-entropy of cosines cos [B, C·K] (K = the margin's sub-centers) and labels
/// [B] (int64), with the per-row inputs its margin reads (`in.norms` [B] for SphereFace, with
/// their gradient, and for AdaFace, without).
template <class Options>
at::Tensor cosine_margin_loss(const at::Tensor& cos, const at::Tensor& target, const Options& options,
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
  const at::Tensor row_params = Traits::row_params(options, in, cos, "cos");
  return margin_cross_entropy(cos, target, Traits::kKind, Traits::params(options, cos.size(1) / sub_centers),
                              row_params, spec);
}

/// feature_margin_loss of inputs that check_feature_loss_inputs has passed, with their `spec`.
template <class Options>
at::Tensor checked_feature_margin_loss(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                                       const Options& options, const CrossEntropySpec& spec, MarginInputs in) {
  using Traits = MarginTraits<Options>;
  if constexpr (Traits::kRowInput == RowInput::norm_statistics) {
    if (!in.norms.defined()) in.norms = detached_norms(features);
  }
  const at::Tensor row_params = Traits::row_params(options, in, features, "features");
  const int64_t K = Traits::sub_centers(options), classes = weight.size(0) / K;
  const MarginParams params = Traits::params(options, classes);
  const LinearSpec linear{Traits::kNormalized, options.chunk_rows()};
  const ClassSampling sampling = class_sampling(options);
  check_class_sampling(sampling);
  if (!sampling.active())
    return linear_margin_cross_entropy(features, weight, target, Traits::kKind, params, row_params, spec, linear);
  // The loss over the kept classes alone, with the margin's numbers of all C classes.
  const at::Tensor labelled = target != spec.ignore_index;
  const at::Tensor positives = local_positives(target.masked_select(labelled), 0, classes);
  const at::Tensor kept = kept_classes(positives, classes, sampling.rate, sampling.generator);
  write_record(sampling, kept, 0);
  CrossEntropySpec kept_spec = spec;
  kept_spec.ignore_index = kept_ignore_index(spec.ignore_index);
  if (spec.class_weight.defined())
    kept_spec.class_weight = spec.class_weight.index_select(0, kept.to(spec.class_weight.device()));
  return linear_margin_cross_entropy(features, kept_vectors(weight, kept, K), relabel(target, positives, labelled, spec.ignore_index),
                                     Traits::kKind, params, row_params, kept_spec, linear);
}

/// The margin cross-entropy of features [B, D] and class vectors `weight` [C·K, D] (one dtype
/// and device) without building the [B, C·K] cosines, in row chunks of options.chunk_rows();
/// the norms its margin reads are the features'.
template <class Options>
at::Tensor feature_margin_loss(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                               const Options& options, const MarginInputs& in = {}) {
  const CrossEntropySpec spec = cross_entropy_spec(options);
  check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows(),
                            MarginTraits<Options>::sub_centers(options));
  return checked_feature_margin_loss(features, weight, target, options, spec, in);
}

}  // namespace angular::detail
