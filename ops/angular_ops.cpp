// angular's losses as dispatcher operators, namespace `angular` (torch.ops.angular in Python):
// one family of ops over cosines and one over features + class vectors, the margin named by
// its table name ("arcface", ...) with its settings by name. The CMake target angular::ops
// adds this file to the consumer's program (a TORCH_LIBRARY block must be compiled once);
// the Python package builds it into angular._C.
//
//   margin_cross_entropy(cos, norms?, target, margin, setting_names, setting_values, statistics,
//                        class_weight?, reduction, ignore_index, label_smoothing) -> loss
//   linear_margin_cross_entropy(features, weight, target, margin, setting_names, setting_values,
//                               statistics, class_weight?, reduction, ignore_index,
//                               label_smoothing, chunk_rows) -> loss
//   *_forward(..., output_mask) -> (loss, grad_0, grad_1)   the gradients for an upstream 1
//                                  (empty where not asked; over features also where the
//                                  losses are per sample, whose rows all share ∂W)
//   *_backward(grad, ..., output_mask) -> (grad_0, grad_1)  the gradients for an upstream
//   margin_settings(margin) -> (names, defaults)            a margin's settings (None: NaN)
//   check_margin(margin, names, values, num_classes)        refuses bad settings
//   cosine_matrix, margin_logits, center_term, update_centers_, update_margin_statistics_
//                                                           composite (ATen) helpers of the modules
//   sharded_margin_cross_entropy, class_range               the class-sharded loss
//                                                           (distributed_ops.hpp)
//   retrieval_metrics, verification_metrics, ..., AngleStats  evaluation (evaluation_ops.hpp)
//
// reduction: 0 none, 1 mean, 2 sum (at::Reduction). statistics: AdaFace's [norm_mean, norm_std],
// CurricularFace's [t], else none. norms: the features' norms, for SphereFace and AdaFace.
//
// Kernels: CPU and CUDA (the fused CUDA kernels where angular::cuda is linked, as everywhere in
// angular), an Autograd kernel (the gradients written in the forward are kept, as the C++
// functional layer keeps them), and Autocast kernels that run the ops in float32 as
// torch.autocast runs cross_entropy. Shapes for torch.compile come from Python
// (angular/_fake.py).

#include "autograd.hpp"
#include "distributed_ops.hpp"
#include "evaluation_ops.hpp"

#include <torch/library.h>

#define ANGULAR_CALL_SCHEMA                                                                       \
  "Tensor target, str margin, str[] setting_names, float[] setting_values, Tensor[] statistics, " \
  "Tensor? class_weight, int reduction, int ignore_index, float label_smoothing"

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
  m.def("margin_settings(str margin) -> (str[], float[])", &angular::ops::margin_settings);
  m.def("check_margin(str margin, str[] setting_names, float[] setting_values, int num_classes) -> ()",
        &angular::ops::check_margin);
  m.def("cosine_matrix(Tensor features, Tensor weight) -> Tensor");
  m.def("margin_logits(Tensor features, Tensor weight, str margin, str[] setting_names, float[] setting_values) "
        "-> Tensor");
  m.def("center_term(Tensor features, Tensor centers, Tensor target, int reduction, int ignore_index) -> Tensor");
  m.def("update_centers_(Tensor(a!) centers, Tensor features, Tensor target, float alpha, int ignore_index) -> ()");
  m.def("update_margin_statistics_(Tensor features, Tensor weight, Tensor target, str margin, "
        "Tensor(a!)[] statistics, float momentum, int ignore_index) -> ()");
  angular::ops::register_evaluation(m);
  angular::ops::register_distributed(m);
}

TORCH_LIBRARY_IMPL(angular, CompositeImplicitAutograd, m) {
  m.impl("cosine_matrix", &angular::ops::cosine_matrix_op);
  m.impl("margin_logits", &angular::ops::margin_logits_op);
  m.impl("center_term", &angular::ops::center_term_op);
  m.impl("update_centers_", &angular::ops::update_centers_op);
  m.impl("update_margin_statistics_", &angular::ops::update_margin_statistics_op);
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
  }
ANGULAR_DEVICE_KERNELS(CPU)
ANGULAR_DEVICE_KERNELS(CUDA)

TORCH_LIBRARY_IMPL(angular, Autograd, m) {
  m.impl("margin_cross_entropy", &angular::ops::cosine_loss_autograd);
  m.impl("linear_margin_cross_entropy", &angular::ops::feature_loss_autograd);
}

TORCH_LIBRARY_IMPL(angular, AutocastCPU, m) {
  m.impl("margin_cross_entropy", &angular::ops::cosine_loss_autocast<c10::DeviceType::CPU>);
  m.impl("linear_margin_cross_entropy", &angular::ops::feature_loss_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(angular, AutocastCUDA, m) {
  m.impl("margin_cross_entropy", &angular::ops::cosine_loss_autocast<c10::DeviceType::CUDA>);
  m.impl("linear_margin_cross_entropy", &angular::ops::feature_loss_autocast<c10::DeviceType::CUDA>);
}

