// A library of the consumer's own that carries angular::cuda's source: its code here is
// something the program does not call.

#include <angular/loss.hpp>

at::Tensor library_loss(const at::Tensor& cos, const at::Tensor& labels) {
  return angular::functional::arc_loss(cos, labels);
}
