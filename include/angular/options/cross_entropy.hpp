#pragma once
// What every loss's options share: the cross-entropy settings (all the losses end in the same
// cross-entropy over their logits, with the meaning of torch::nn::CrossEntropyLoss), the
// features-level losses' chunking, and the macros that declare a margin's own settings once
// for both of its option sets.

#include <ATen/ATen.h>
#include <torch/arg.h>
#include <torch/enum.h>

#include <variant>

namespace angular {

using reduction_t = std::variant<torch::enumtype::kNone, torch::enumtype::kMean, torch::enumtype::kSum>;

/// The workspace that the features-level losses (functional::linear_*, the modules' forward)
/// size their row chunks by when `chunk_rows` is automatic: 128 MiB.
constexpr int64_t kDefaultWorkspaceBytes = int64_t{128} << 20;

}  // namespace angular

// TORCH_ARG setters return the declaring class, so the shared fields are macros rather than
// base classes: chained calls like `ArcLossOptions(10, 64).reduction(torch::kSum).k(4)` keep
// their type.
//   reduction        torch::kMean (default), torch::kSum or torch::kNone (per sample)
//   ignore_index     samples with this label add nothing to the loss, nor to its mean
//   label_smoothing  in [0, 1]: the target mixes (1 - eps) one-hot with eps / C uniform
//   weight           optional per-class weights [C], as torch::nn::CrossEntropyLoss's
//   chunk_rows       features-level losses: samples per chunk, each chunk holding [chunk_rows, C]
//                    logits (and as much again for their gradient on CUDA); 0 (default) takes
//                    as many as fit kDefaultWorkspaceBytes. Losses over cosines ignore it.
//   chunk_classes    features-level losses on the CPU: classes per block of the class-blocked
//                    pass (every row at once, two sweeps over blocks of classes), which runs
//                    where this is set, or where both are 0 (default) and one chunk of rows
//                    within kDefaultWorkspaceBytes cannot hold the batch; 0: blocks of
//                    [B, classes] products within 16 MiB. Elsewhere ignored.
//   sample_rate      features-level losses: PartialFC's class sampling in (0, 1]. Below 1 each
//                    call keeps the classes labelling the batch and draws others uniformly up
//                    to ceil(sample_rate·C); the loss is over the kept classes alone and the
//                    other rows of W get a zero gradient. 1 (default): every class. Modules
//                    sample in training mode only. Losses over cosines refuse it.
//   generator        the CPU generator the classes are drawn from (undefined: the default one)
//   sampled_classes  an int64 CPU tensor that each sampled call sets to the classes it kept
//                    (their indices, positives first, then the drawn ones, each ascending)
#define ANGULAR_CROSS_ENTROPY_ARGS                             \
  TORCH_ARG(::angular::reduction_t, reduction) = torch::kMean; \
  TORCH_ARG(int64_t, ignore_index) = -100;                     \
  TORCH_ARG(double, label_smoothing) = 0.0;                    \
  TORCH_ARG(at::Tensor, weight) = at::Tensor();                \
  TORCH_ARG(int64_t, chunk_rows) = 0;                          \
  TORCH_ARG(int64_t, chunk_classes) = 0;                       \
  TORCH_ARG(double, sample_rate) = 1.0;                        \
  TORCH_ARG(at::Generator, generator) = at::Generator();       \
  TORCH_ARG(at::Tensor, sampled_classes) = at::Tensor()

// A loss's own settings are a list `LIST(X)` of X(type, name, default, doc) entries, written once
// in its options header and expanded into both option sets: each setting as a TORCH_ARG, then
//   for_each_setting(f)         f(name, value) for each setting, in order (const), or
//                               f(name, reference) to change them by name (non-const)
//   for_each_setting_doc(f)     f(name, doc) for each setting, in order (static): its one-line
//                               meaning, which the Python package shows in its docstrings
//   copy_settings_from(other)   this set's settings taken from another set that has them
#define ANGULAR_DECLARE_SETTING(type, name, default_value, doc) TORCH_ARG(type, name) = default_value;
#define ANGULAR_VISIT_SETTING(type, name, default_value, doc) f(#name, this->name##_);
#define ANGULAR_VISIT_SETTING_DOC(type, name, default_value, doc) f(#name, doc);
#define ANGULAR_COPY_SETTING(type, name, default_value, doc) this->name##_ = other.name();
#define ANGULAR_SETTINGS(LIST)                               \
  LIST(ANGULAR_DECLARE_SETTING)                              \
 public:                                                     \
  template <class F>                                         \
  void for_each_setting(F&& f) const {                       \
    LIST(ANGULAR_VISIT_SETTING) static_cast<void>(f);        \
  }                                                          \
  template <class F>                                         \
  void for_each_setting(F&& f) {                             \
    LIST(ANGULAR_VISIT_SETTING) static_cast<void>(f);        \
  }                                                          \
  template <class F>                                         \
  static void for_each_setting_doc(F&& f) {                  \
    LIST(ANGULAR_VISIT_SETTING_DOC) static_cast<void>(f);    \
  }                                                          \
  template <class Other>                                     \
  void copy_settings_from(const Other& other) {              \
    LIST(ANGULAR_COPY_SETTING) static_cast<void>(other);     \
  }

/// The body of a functional options struct: the loss's settings and the cross-entropy's.
#define ANGULAR_FUNC_OPTIONS(LIST) \
  ANGULAR_SETTINGS(LIST)           \
  ANGULAR_CROSS_ENTROPY_ARGS

/// The body of a module's options struct `Name`: the constructor from the module's sizes, its
/// functional options' type `Func`, the sizes, the loss's settings and the cross-entropy's.
#define ANGULAR_MODULE_OPTIONS(Name, Func, LIST)                                                    \
  Name(int64_t num_classes, int64_t embedding_dim)                                                  \
      : num_classes_(num_classes), embedding_dim_(embedding_dim) {}                                 \
  using FuncOptions = Func;                                                                         \
  TORCH_ARG(int64_t, num_classes);                                                                  \
  TORCH_ARG(int64_t, embedding_dim);                                                                \
  ANGULAR_SETTINGS(LIST)                                                                            \
  ANGULAR_CROSS_ENTROPY_ARGS

/// A loss without settings of its own.
#define ANGULAR_NO_SETTINGS(X)
