// The opt-in CUDA kernels of angular. Linking the CMake target angular::cuda adds this file to
// the consumer's program; at start-up it installs the fused CUDA launchers in the table that
// angular's functional layer consults for CUDA tensors (angular::kernel_path).

#include <angular/detail/cuda/margin_cross_entropy.cuh>
#include <angular/kernel_path.hpp>

namespace angular {

void register_cuda_kernels() {
  detail::cuda_row_kernels() = {&detail::cuda::forward, &detail::cuda::backward};
}

}  // namespace angular

namespace {

const bool angular_cuda_kernels_registered = [] {
  angular::register_cuda_kernels();
  return true;
}();

}  // namespace
