#pragma once
// The label range check of the losses without waiting for the device. Labels on the CPU are
// checked at once, on the host. Labels on a device would need a device-to-host copy, one
// synchronisation per loss call, after which the host can no longer queue work ahead of the
// device; instead the device finds the first bad label itself, copies the answer into pinned
// host memory behind the work already queued, and the answer is read once it has arrived:
// at the next loss call whose check finds it done, or at angular::synchronize_label_checks().
// Meanwhile the fused kernels give a row with a bad label a NaN loss and gradient, never a
// wrong finite number.

#include <angular/detail/macros.hpp>

#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Exception.h>

#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <string>

namespace angular::detail {

/// The error of label `label` at `index` of the labels called `name`.
inline std::string bad_label_message(const char* name, int64_t index, int64_t label, int64_t num_classes,
                                     std::optional<int64_t> ignore_index) {
  return c10::str("angular: ", name, "[", index, "] = ", label, " is out of range [0, ", num_classes, ")",
                  ignore_index ? c10::str(" and is not ignore_index (", *ignore_index, ")") : std::string());
}

/// [first bad index, its label] of `labels` as a [2] int64 tensor on their device, the index
/// −1 where every label is in [0, C) or is ignore_index. Device operations only.
inline at::Tensor first_bad_label(const at::Tensor& labels, int64_t num_classes, std::optional<int64_t> ignore_index) {
  at::Tensor bad = (labels < 0).logical_or_(labels >= num_classes);
  if (ignore_index) bad.logical_and_(labels != *ignore_index);
  const int64_t n = labels.numel();
  const at::Tensor positions = at::arange(n, labels.options());
  const at::Tensor first = at::where(bad, positions, at::full({}, n, labels.options())).min();
  const at::Tensor found = first < n;
  const at::Tensor label = labels.index_select(0, first.clamp_max(n - 1).unsqueeze(0)).squeeze(0);
  return at::stack({at::where(found, first, at::full({}, -1, labels.options())), label});
}

/// Label checks whose answers are on their way from a device.
class PendingLabelChecks {
 public:
  struct Check {
    at::Tensor answer;                 // [2] int64 on the host, written by the device
    std::optional<c10::Event> arrived;  // recorded after the copy (none: on the host already)
    std::string name;
    int64_t num_classes;
    std::optional<int64_t> ignore_index;
  };

  /// Queues the check of `labels` (on a device) against [0, num_classes) and ignore_index.
  void add(const at::Tensor& labels, const char* name, int64_t num_classes, std::optional<int64_t> ignore_index) {
    if (labels.numel() == 0) return;
    Check check{at::Tensor(), std::nullopt, name, num_classes, ignore_index};
    const at::Tensor answer = first_bad_label(labels.contiguous(), num_classes, ignore_index);
    if (labels.device().is_cpu()) {
      check.answer = answer;
    } else {
      check.answer = at::empty({2}, answer.options().device(at::kCPU).pinned_memory(true));
      check.answer.copy_(answer, /*non_blocking=*/true);
      const c10::Device device = labels.device();
      check.arrived.emplace(device.type());
      check.arrived->record(c10::impl::getDeviceGuardImpl(device.type())->getStream(device));
    }
    const std::lock_guard<std::mutex> lock(mutex_);
    checks_.push_back(std::move(check));
  }

  /// Takes the checks whose answers have arrived (all of them, waiting, with `wait`) and
  /// throws the first bad label's error among them.
  void raise_arrived(bool wait) {
    std::deque<Check> arrived;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      while (!checks_.empty() && (wait || !checks_.front().arrived || checks_.front().arrived->query())) {
        arrived.push_back(std::move(checks_.front()));
        checks_.pop_front();
      }
    }
    for (Check& check : arrived) {
      if (check.arrived) check.arrived->synchronize();
      const int64_t* answer = check.answer.data_ptr<int64_t>();
      TORCH_CHECK(answer[0] < 0,
                  bad_label_message(check.name.c_str(), answer[0], answer[1], check.num_classes, check.ignore_index),
                  " (found on the device after the call that took it returned; that call's loss is NaN)");
    }
  }

  size_t size() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return checks_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::deque<Check> checks_;
};

/// The program's one queue (default visibility: one across shared objects too).
ANGULAR_VISIBLE inline PendingLabelChecks& pending_label_checks() {
  static PendingLabelChecks checks;
  return checks;
}

}  // namespace angular::detail
