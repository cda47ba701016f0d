#pragma once
// The label checks of losses over device tensors, which do not wait for the device
// (detail/label_checks.hpp), and the one call that waits for them.

#include <angular/detail/label_checks.hpp>

namespace angular {

/// Waits for the label checks of device tensors queued so far by the losses and throws the
/// error of the first bad label among them ("angular: target[i] = y is out of range [0, C)").
/// Call it where the program waits for the device anyway (reading a loss with item(), at the
/// end of an epoch); a later loss call also throws it once the answer has arrived.
inline void synchronize_label_checks() { detail::pending_label_checks().raise_arrived(/*wait=*/true); }

}  // namespace angular
