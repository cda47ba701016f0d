// The fused CUDA kernels of angular (the repository's cuda/angular_cuda.cu), for angular._C.
#include "angular_cuda.cu"
