#pragma once
// Every margin's loss over cosines and over features + class vectors, from its MarginTraits
// entry: the inputs checked, the margin's numbers and per-row parameters, then the path that
// kernel_path() picks (detail/margin_cross_entropy.hpp, detail/linear_margin_cross_entropy.hpp).

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
  return linear_margin_cross_entropy(features, weight, target, Traits::kKind,
                                     Traits::params(options, weight.size(0) / Traits::sub_centers(options)),
                                     row_params, spec, {Traits::kNormalized, options.chunk_rows()});
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
