// A consumer of the installed package that links angular::cuda: the fused CUDA kernels must
// be installed at start-up, and on a GPU the Arc loss must match the CPU's.

#include <angular/loss.hpp>
#include <torch/cuda.h>

#include <cmath>
#include <cstdio>

int main() {
  if (!angular::cuda_kernels_registered()) {
    std::puts("angular::cuda did not install its kernels");
    return 1;
  }
  if (!torch::cuda::is_available()) {
    std::puts("CUDA kernels installed; no GPU to run them on");
    return 0;
  }
  torch::manual_seed(0);
  const at::Tensor cos = torch::rand({64, 5000}) * 2 - 1;
  const at::Tensor labels = torch::randint(5000, {64}, torch::kLong);
  const double cpu = angular::functional::arc_loss(cos, labels).item<double>();
  const at::Tensor on_gpu = cos.cuda();
  const double gpu = angular::functional::arc_loss(on_gpu, labels.cuda()).item<double>();
  std::printf("%s: cpu %.7f gpu %.7f\n", angular::to_string(angular::kernel_path(on_gpu)), cpu, gpu);
  return std::abs(cpu - gpu) <= 1e-5 * std::abs(cpu) ? 0 : 1;
}
