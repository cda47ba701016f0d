// angular's losses as dispatcher operators, namespace `angular` (torch.ops.angular in Python):
// one family of ops over cosines and one over features + class vectors, the margin named by
// its table name ("arcface", ...) with its settings as one float64 CPU tensor in the order of
// its options (a tensor, so that torch.compile does not specialise on their values). The CMake
// target angular::ops adds this file to the consumer's program (a TORCH_LIBRARY block must be
// compiled once); the Python package builds it into angular._C.
//
//   margin_cross_entropy(cos, norms?, target, margin, settings, statistics, class_weight?,
//                        reduction, ignore_index, label_smoothing) -> loss
//   linear_margin_cross_entropy(features, weight, target, margin, settings, statistics,
//                               class_weight?, reduction, ignore_index, label_smoothing,
//                               chunk_rows) -> loss
//   *_forward(..., output_mask) -> (loss, grad_0, grad_1)   the gradients for an upstream of 1 on
//                                  every loss element (empty where not asked)
//   *_backward(grad, ..., output_mask) -> (grad_0, grad_1)  the gradients for an upstream
//   center_loss(features, weight, centers, target, settings, ...) -> loss   settings = [lambda]
//   margin_statistics_step(features, weight, target, margin, settings, statistics, ...,
//                          momentum) -> statistics   a module's training step of AdaFace's or
//                                                    CurricularFace's running statistics
//   loss_table() -> str                      every loss's names, settings, defaults and docs (JSON)
//   check_settings(loss, settings, num_classes)   refuses settings out of range
//   composite_path(enabled) -> bool          sets this thread's CompositePathGuard state
//   release_gradient_buffers() -> int        gives back the freed weight-gradient buffers kept for
//                                            the next step (angular/memory.hpp); their bytes
//   cosine_matrix, margin_logits, center_term, update_centers_   composite (ATen) helpers
//   sharded_margin_cross_entropy, class_range                    the class-sharded loss
//                                                                (distributed_ops.hpp)
//   retrieval_metrics, verification_metrics, ..., AngleStats     evaluation (evaluation_ops.hpp)
//
// reduction: 0 none, 1 mean, 2 sum (at::Reduction). statistics: in the order of the margin's
// kStatistics (AdaFace's [norm_mean, norm_std], CurricularFace's [t]). norms: the features'
// norms, for SphereFace and AdaFace.
//
// Kernels: pure CPU and CUDA kernels (kernels.hpp; the fused CUDA kernels where angular::cuda
// is linked, as everywhere in angular); the autograd of the loss ops in one place above them
// (autograd.hpp); Autocast kernels that run them in float32 as torch.autocast runs
// cross_entropy. Shapes for torch.compile come from Python (angular/_fake.py).

#include "autograd.hpp"
#include "composite_ops.hpp"
#include "distributed_ops.hpp"
#include "evaluation_ops.hpp"
#include "table.hpp"

#include <torch/library.h>

#define ANGULAR_CALL_SCHEMA                                                                    \
  "Tensor target, str margin, Tensor settings, Tensor[] statistics, Tensor? class_weight, int reduction, " \
  "int ignore_index, float label_smoothing"

TORCH_LIBRARY(angular, m) {
  m.def("margin_cross_entropy(Tensor cos, Tensor? norms, " ANGULAR_CALL_SCHEMA ") -> Tensor");
  m.def("margin_cross_entropy_forward(Tensor cos, Tensor? norms, " ANGULAR_CALL_SCHEMA
        ", bool[2] output_mask) -> (Tensor, Tensor, Tensor)");
  m.def("margin_cross_entropy_backward(Tensor grad, Tensor cos, Tensor? norms, " ANGULAR_CALL_SCHEMA
        ", bool[2] output_mask) -> (Tensor, Tensor)");
  m.def("linear_margin_cross_entropy(Tensor features, Tensor weight, " ANGULAR_CALL_SCHEMA
        ", int chunk_rows) -> Tensor");
  m.def("linear_margin_cross_entropy_forward(Tensor features, Tensor weight, " ANGULAR_CALL_SCHEMA
        ", int chunk_rows, bool[2] output_mask) -> (Tensor, Tensor, Tensor)");
  m.def("linear_margin_cross_entropy_backward(Tensor grad, Tensor features, Tensor weight, " ANGULAR_CALL_SCHEMA
        ", int chunk_rows, bool[2] output_mask) -> (Tensor, Tensor)");
  m.def("center_loss(Tensor features, Tensor weight, Tensor centers, Tensor target, Tensor settings, "
        "Tensor? class_weight, int reduction, int ignore_index, float label_smoothing, int chunk_rows) -> Tensor");
  m.def("margin_statistics_step(Tensor features, Tensor weight, " ANGULAR_CALL_SCHEMA
        ", int chunk_rows, Tensor momentum) -> Tensor[]");
  m.def("loss_table() -> str", &angular::ops::loss_table);
  m.def("check_settings(str loss, Tensor settings, int num_classes) -> ()", &angular::ops::check_settings);
  m.def("composite_path(bool enabled) -> bool", [](bool enabled) {
    const bool previous = angular::detail::composite_path_forced();
    angular::detail::composite_path_forced() = enabled;
    return previous;
  });
  m.def("release_gradient_buffers() -> int",
        [] { return static_cast<int64_t>(angular::release_gradient_buffers()); });
  m.def("cosine_matrix(Tensor features, Tensor weight) -> Tensor");
  m.def("margin_logits(Tensor features, Tensor weight, str margin, float[] settings) -> Tensor");
  m.def("center_term(Tensor features, Tensor centers, Tensor target, int reduction, int ignore_index) -> Tensor");
  m.def("update_centers_(Tensor(a!) centers, Tensor features, Tensor target, Tensor alpha, int ignore_index) -> ()");
  angular::ops::register_evaluation(m);
  angular::ops::register_distributed(m);
}

TORCH_LIBRARY_IMPL(angular, CompositeImplicitAutograd, m) {
  m.impl("cosine_matrix", &angular::ops::cosine_matrix_op);
  m.impl("margin_logits", &angular::ops::margin_logits_op);
  m.impl("center_term", &angular::ops::center_term_op);
  m.impl("center_loss", &angular::ops::center_loss_op);
  m.impl("update_centers_", &angular::ops::update_centers_op);
  angular::ops::register_distributed_kernels(m);
}

#define ANGULAR_DEVICE_KERNELS(KEY)                                                         \
  TORCH_LIBRARY_IMPL(angular, KEY, m) {                                                     \
    m.impl("margin_cross_entropy", &angular::ops::cosine_loss_op);                          \
    m.impl("margin_cross_entropy_forward", &angular::ops::cosine_forward);                  \
    m.impl("margin_cross_entropy_backward", &angular::ops::cosine_backward);                \
    m.impl("linear_margin_cross_entropy", &angular::ops::feature_loss_op);                  \
    m.impl("linear_margin_cross_entropy_forward", &angular::ops::feature_forward);          \
    m.impl("linear_margin_cross_entropy_backward", &angular::ops::feature_backward);        \
    m.impl("margin_statistics_step", &angular::ops::margin_statistics_step);                \
  }
ANGULAR_DEVICE_KERNELS(CPU)
ANGULAR_DEVICE_KERNELS(CUDA)

TORCH_LIBRARY_IMPL(angular, Autograd, m) {
  m.impl("margin_cross_entropy", &angular::ops::cosine_loss_autograd);
  m.impl("linear_margin_cross_entropy", &angular::ops::feature_loss_autograd);
  m.impl("margin_statistics_step", &angular::ops::margin_statistics_step_autograd);
}

TORCH_LIBRARY_IMPL(angular, AutocastCPU, m) {
  m.impl("margin_cross_entropy", &angular::ops::cosine_loss_autocast<c10::DeviceType::CPU>);
  m.impl("linear_margin_cross_entropy", &angular::ops::feature_loss_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(angular, AutocastCUDA, m) {
  m.impl("margin_cross_entropy", &angular::ops::cosine_loss_autocast<c10::DeviceType::CUDA>);
  m.impl("linear_margin_cross_entropy", &angular::ops::feature_loss_autocast<c10::DeviceType::CUDA>);
}

