# The GPU architectures that CUDA code linking LibTorch (angular::cuda's kernels among it) is
# built for, when the build does not say. LibTorch takes them from TORCH_CUDA_ARCH_LIST and
# ignores CMAKE_CUDA_ARCHITECTURES; left unset, its own list includes architectures that
# CUDA 13 no longer compiles. Ours:
#   - the GPUs of this machine, when nvidia-smi sees any (like CMake's "native");
#   - otherwise Turing, Ampere, Ada and Hopper (7.5 8.0 8.6 8.9 9.0), with Hopper's PTX,
#     which newer GPUs compile when the program loads.
# Set TORCH_CUDA_ARCH_LIST (a CMake or environment variable, e.g. "8.6" or "8.0;9.0") to
# choose; fewer architectures compile faster.
macro(angular_default_torch_cuda_arch_list)
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(_angular_architectures "")
    find_program(ANGULAR_NVIDIA_SMI nvidia-smi)
    if(ANGULAR_NVIDIA_SMI)
      execute_process(COMMAND ${ANGULAR_NVIDIA_SMI} --query-gpu=compute_cap --format=csv,noheader
                      OUTPUT_VARIABLE _angular_capabilities RESULT_VARIABLE _angular_result
                      OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
      if(_angular_result EQUAL 0 AND _angular_capabilities MATCHES "^[0-9]+\\.[0-9]+")
        string(REGEX REPLACE "[ \r]*\n[ \r]*" ";" _angular_architectures "${_angular_capabilities}")
        list(REMOVE_DUPLICATES _angular_architectures)
      endif()
    endif()
    if(NOT _angular_architectures)
      set(_angular_architectures "7.5;8.0;8.6;8.9;9.0+PTX")
    endif()
    set(TORCH_CUDA_ARCH_LIST "${_angular_architectures}")
    message(STATUS "angular: CUDA architectures ${TORCH_CUDA_ARCH_LIST} (set TORCH_CUDA_ARCH_LIST to choose)")
    unset(_angular_architectures)
    unset(_angular_capabilities)
    unset(_angular_result)
  endif()
endmacro()
