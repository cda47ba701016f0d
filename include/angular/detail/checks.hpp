#pragma once
// Argument validation shared by the functional and module layers. Every message starts with
// "angular:" and names the argument and the offending value.

#include <ATen/ATen.h>
#include <angular/detail/constants.hpp>
#include <angular/detail/label_checks.hpp>
#include <angular/kernel_path.hpp>
#include <c10/util/Exception.h>
#include <torch/enum.h>

#include <cmath>
#include <optional>
#include <string>
#include <utility>

namespace angular::detail {

/// The cross-entropy settings of any option set, with the reduction as ATen's enum.
struct CrossEntropySpec {
  int64_t reduction = at::Reduction::Mean;
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  at::Tensor class_weight;  // [C] or undefined
};

template <class Options>
CrossEntropySpec cross_entropy_spec(const Options& options) {
  return {torch::enumtype::reduction_get_enum(options.reduction()), options.ignore_index(),
          options.label_smoothing(), options.weight()};
}

/// Copies the cross-entropy, chunking and class-sampling settings from one option set into
/// another.
template <class To, class From>
To with_cross_entropy_args(To to, const From& from) {
  to.reduction(from.reduction())
      .ignore_index(from.ignore_index())
      .label_smoothing(from.label_smoothing())
      .weight(from.weight())
      .chunk_rows(from.chunk_rows())
      .chunk_classes(from.chunk_classes())
      .sample_rate(from.sample_rate())
      .generator(from.generator())
      .sampled_classes(from.sampled_classes());
  return to;
}

/// The functional options of a module's options (its own settings, the cross-entropy's, the
/// chunks).
template <class ModuleOptions>
typename ModuleOptions::FuncOptions func_options_of(const ModuleOptions& options) {
  typename ModuleOptions::FuncOptions to;
  to.copy_settings_from(options);
  return with_cross_entropy_args(std::move(to), options);
}

/// `value` must be finite and satisfy `in_range`, described to the user by `range`.
inline void check_hyperparameter(const char* name, double value, bool in_range, const char* range) {
  TORCH_CHECK(std::isfinite(value) && in_range, "angular: ", name, " must be ", range, ", got ",
              value);
}

inline void check_arc_k(double k) { check_hyperparameter("k", k, k > 0, "a finite number > 0"); }

inline void check_scale(double scale) {
  check_hyperparameter("scale", scale, scale > 0, "a finite number > 0");
}

inline void check_sub_centers(int64_t sub_centers) {
  TORCH_CHECK(sub_centers >= 1, "angular: sub_centers must be >= 1, got ", sub_centers);
}

/// An exponential moving average's momentum (the weight of the new value).
inline void check_momentum(double momentum) {
  check_hyperparameter("momentum", momentum, momentum > 0 && momentum <= 1, "in (0, 1]");
}

inline void check_module_sizes(const char* options, int64_t num_classes, int64_t embedding_dim) {
  TORCH_CHECK(num_classes >= 1, "angular: ", options, "::num_classes must be >= 1, got ",
              num_classes);
  TORCH_CHECK(embedding_dim >= 1, "angular: ", options, "::embedding_dim must be >= 1, got ",
              embedding_dim);
}

inline void check_floating_matrix(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.defined(), "angular: ", name, " is an undefined tensor");
  TORCH_CHECK(t.dim() == 2, "angular: ", name, " must be 2-D, got shape ", t.sizes());
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "angular: ", name,
              " must be a floating-point tensor, got ", t.scalar_type());
}

inline void check_same_device(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                              const char* b_name) {
  TORCH_CHECK(a.device() == b.device(), "angular: ", b_name, " is on ", b.device(), " but ",
              a_name, " is on ", a.device());
}

/// A per-row vector `t` ([B] floating, on `input`'s device, one per row of input).
inline void check_row_vector(const at::Tensor& t, const char* name, const at::Tensor& input, const char* input_name) {
  TORCH_CHECK(t.defined(), "angular: ", name, " is an undefined tensor");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "angular: ", name, " must be floating-point, got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == input.size(0), "angular: ", name, " must be [", input.size(0),
              "] to match ", input_name, " ", input.sizes(), ", got shape ", t.sizes());
  check_same_device(input, input_name, t, name);
}

/// A running statistic `t`: one floating-point element on `input`'s device.
inline void check_statistic(const at::Tensor& t, const char* name, const at::Tensor& input, const char* input_name) {
  TORCH_CHECK(t.defined(), "angular: ", name, " is an undefined tensor");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()) && t.numel() == 1, "angular: ", name,
              " must hold one floating-point number, got ", t.scalar_type(), " of shape ", t.sizes());
  check_same_device(input, input_name, t, name);
}

/// features [B, D] against class vectors [C, D] (weight, centers).
inline void check_features(const at::Tensor& features, const at::Tensor& vectors,
                           const char* vectors_name) {
  check_floating_matrix(features, "features");
  check_floating_matrix(vectors, vectors_name);
  TORCH_CHECK(features.size(1) == vectors.size(1), "angular: features must be [B, ",
              vectors.size(1), "] to match ", vectors_name, " ", vectors.sizes(), ", got ",
              features.sizes());
  check_same_device(features, "features", vectors, vectors_name);
}

/// `labels` (called `name` in messages) are int64 [B], one per row of the input, on its device.
inline void check_label_tensor(const at::Tensor& labels, const char* name, const at::Tensor& input,
                               const char* input_name) {
  TORCH_CHECK(labels.defined(), "angular: ", name, " is an undefined tensor");
  TORCH_CHECK(labels.scalar_type() == at::kLong, "angular: ", name,
              " must be int64 (torch::kLong), got ", labels.scalar_type());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == input.size(0), "angular: ", name,
              " must be [", input.size(0), "] to match ", input_name, " ", input.sizes(),
              ", got shape ", labels.sizes());
  check_same_device(input, input_name, labels, name);
}

/// check_label_tensor, and each label in [0, C) or, where an ignore_index is given, equal to
/// it. The range is checked on the host, so a bad label never reaches a kernel.
inline void check_labels(const at::Tensor& labels, const char* name, const at::Tensor& input,
                         const char* input_name, int64_t num_classes,
                         std::optional<int64_t> ignore_index = std::nullopt) {
  check_label_tensor(labels, name, input, input_name);
  const at::Tensor host = labels.device().is_cpu() ? labels.contiguous() : labels.cpu();
  const int64_t* data = host.data_ptr<int64_t>();
  for (int64_t i = 0; i < host.numel(); ++i) {
    const int64_t y = data[i];
    if (y >= 0 && y < num_classes) continue;
    TORCH_CHECK(ignore_index.has_value() && y == *ignore_index,
                bad_label_message(name, i, y, num_classes, ignore_index));
  }
}

/// check_labels for the labels of a loss: on the host for CPU labels; for labels that the
/// fused CUDA kernels take, without waiting for the device (detail/label_checks.hpp): the error comes from a later
/// call, or from angular::synchronize_label_checks(), and meanwhile the fused kernels make the row NaN.
inline void check_loss_labels(const at::Tensor& labels, const char* name, const at::Tensor& input,
                              const char* input_name, int64_t num_classes, int64_t ignore_index) {
  // The composite path indexes with the labels in ATen's own kernels (which assert on a bad
  // one): only the fused kernels' labels are checked later.
  if (labels.defined() && kernel_path(input) == KernelPath::fused_cuda) {
    check_label_tensor(labels, name, input, input_name);
    pending_label_checks().raise_arrived(/*wait=*/false);
    pending_label_checks().add(labels, name, num_classes, ignore_index);
    return;
  }
  check_labels(labels, name, input, input_name, num_classes, ignore_index);
}

/// Labels that can index a [num_classes] or [num_classes, D] tensor on any device: a label out
/// of range (possible on a device, whose labels are checked later) becomes a valid one, its
/// row's loss being NaN anyway; on the CPU, where labels are checked first, it changes nothing.
inline at::Tensor clamp_labels(const at::Tensor& labels, int64_t num_classes) {
  return labels.clamp(0, num_classes - 1);
}

inline void check_cross_entropy_spec(const CrossEntropySpec& spec, const at::Tensor& input,
                                     int64_t num_classes) {
  check_hyperparameter("label_smoothing", spec.label_smoothing,
                       spec.label_smoothing >= 0 && spec.label_smoothing <= 1, "in [0, 1]");
  const at::Tensor& w = spec.class_weight;
  if (!w.defined()) return;
  TORCH_CHECK(w.dim() == 1 && w.size(0) == num_classes, "angular: weight (class weights) must be [",
              num_classes, "], got shape ", w.sizes());
  TORCH_CHECK(at::isFloatingType(w.scalar_type()),
              "angular: weight (class weights) must be floating-point, got ", w.scalar_type());
  check_same_device(input, "the input", w, "weight (class weights)");
}

/// `x` itself, after refusing rows without a direction, whose angle to anything is
/// undefined: rows with a NaN or an infinity, and zero rows.
inline at::Tensor check_direction_rows(const at::Tensor& x, const char* name) {
  if (x.size(0) == 0) return x;
  const at::Tensor not_finite = at::isfinite(x).all(/*dim=*/1).logical_not().nonzero();
  TORCH_CHECK(not_finite.numel() == 0, "angular: ", name, " row ",
              not_finite.numel() > 0 ? not_finite[0][0].item<int64_t>() : -1,
              " is not finite: its angle to anything is undefined");
  const at::Tensor zero = (x.norm(2, /*dim=*/1) == 0).nonzero();
  TORCH_CHECK(zero.numel() == 0, "angular: ", name, " row ",
              zero.numel() > 0 ? zero[0][0].item<int64_t>() : -1,
              " has zero norm: its angle to anything is undefined");
  return x;
}

/// Losses compute in float32, or float64 when an input is double; half and bfloat16 inputs
/// are promoted.
inline at::ScalarType compute_dtype(const at::Tensor& a, const at::Tensor& b = {}) {
  const bool is_double =
      a.scalar_type() == at::kDouble || (b.defined() && b.scalar_type() == at::kDouble);
  return is_double ? at::kDouble : at::kFloat;
}

}  // namespace angular::detail

namespace angular::detail {

/// Inputs of a loss over cosines: cos [B, C·K] floating with C >= 1 (K sub-centers per class),
/// labels, class weights.
inline void check_cosine_loss_inputs(const at::Tensor& cos, const at::Tensor& target,
                                     const CrossEntropySpec& spec, int64_t sub_centers = 1) {
  check_floating_matrix(cos, "cos");
  check_sub_centers(sub_centers);
  TORCH_CHECK(cos.size(1) >= 1, "angular: cos must have at least one class column, got shape ",
              cos.sizes());
  TORCH_CHECK(cos.size(1) % sub_centers == 0, "angular: cos must have sub_centers (", sub_centers,
              ") columns per class, got shape ", cos.sizes());
  const int64_t classes = cos.size(1) / sub_centers;
  check_cross_entropy_spec(spec, cos, classes);
  check_loss_labels(target, "target", cos, "cos", classes, spec.ignore_index);
}

/// Inputs of a loss over features: features [B, D], class vectors weight [C·K, D] (K
/// sub-centers per class) with C >= 1 and the same dtype, labels, class weights, and the chunking
/// option.
inline void check_feature_loss_inputs(const at::Tensor& features, const at::Tensor& weight,
                                      const at::Tensor& target, const CrossEntropySpec& spec,
                                      int64_t chunk_rows, int64_t sub_centers = 1) {
  check_features(features, weight, "weight");
  TORCH_CHECK(features.scalar_type() == weight.scalar_type(), "angular: features are ",
              features.scalar_type(), " but weight is ", weight.scalar_type(),
              "; convert one of them (the products run in the inputs' dtype)");
  TORCH_CHECK(weight.size(0) >= 1, "angular: weight must have at least one class row, got shape ",
              weight.sizes());
  TORCH_CHECK(chunk_rows >= 0, "angular: chunk_rows must be >= 1, or 0 to size the chunks from "
              "kDefaultWorkspaceBytes, got ", chunk_rows);
  check_sub_centers(sub_centers);
  TORCH_CHECK(weight.size(0) % sub_centers == 0, "angular: weight must have sub_centers (", sub_centers,
              ") rows per class, got shape ", weight.sizes());
  const int64_t classes = weight.size(0) / sub_centers;
  check_cross_entropy_spec(spec, features, classes);
  check_loss_labels(target, "target", features, "features", classes, spec.ignore_index);
}

}  // namespace angular::detail
