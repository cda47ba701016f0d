# What angular's CMake (and its installed package's config) needs to know about the LibTorch it
# builds with: the CUDA architectures, the C++ standard of CUDA code, the wheel's libraries.

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
    angular_visible_gpu_capabilities(_angular_architectures)
    if(NOT _angular_architectures)
      set(_angular_architectures "7.5;8.0;8.6;8.9;9.0+PTX")
    endif()
    set(TORCH_CUDA_ARCH_LIST "${_angular_architectures}")
    message(STATUS "angular: CUDA architectures ${TORCH_CUDA_ARCH_LIST} (set TORCH_CUDA_ARCH_LIST to choose)")
    unset(_angular_architectures)
  endif()
endmacro()

# The compute capabilities of the GPUs that nvidia-smi sees ("8.6;9.0"), in `out`; empty
# without any.
function(angular_visible_gpu_capabilities out)
  set(capabilities "")
  find_program(ANGULAR_NVIDIA_SMI nvidia-smi)
  if(ANGULAR_NVIDIA_SMI)
    execute_process(COMMAND ${ANGULAR_NVIDIA_SMI} --query-gpu=compute_cap --format=csv,noheader
                    OUTPUT_VARIABLE listed RESULT_VARIABLE result OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(result EQUAL 0 AND listed MATCHES "^[0-9]+\\.[0-9]+")
      string(REGEX REPLACE "[ \r]*\n[ \r]*" ";" capabilities "${listed}")
      list(REMOVE_DUPLICATES capabilities)
    endif()
  endif()
  set(${out} "${capabilities}" PARENT_SCOPE)
endfunction()

# The C++ standard that LibTorch asks of the code that uses it, in `out`: 20 from torch 2.15 on
# (its target's cxx_std_20; its headers refuse anything older), else 17. LibTorch asks it of
# C++ code only: CUDA code must be told.
function(angular_torch_cxx_standard out)
  set(standard 17)
  if(TARGET torch)
    get_target_property(features torch INTERFACE_COMPILE_FEATURES)
    get_target_property(options torch INTERFACE_COMPILE_OPTIONS)
    if("cxx_std_20" IN_LIST features OR "${options}" MATCHES "-std=c\\+\\+20")
      set(standard 20)
    endif()
  endif()
  set(${out} ${standard} PARENT_SCOPE)
endfunction()

# CMake 3.25 (Debian 12's) knows no C++20 dialect of nvcc and stops at a CUDA target that asks
# for it ("cuda_std_20 is not known"): tells it nvcc's flag and the feature, where it knows
# neither. Call after CUDA is enabled, in the scope of the targets.
macro(angular_nvcc_cxx20_dialect)
  if(CMAKE_CUDA_COMPILER_ID STREQUAL "NVIDIA" AND NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  if(CMAKE_CUDA_COMPILER_ID STREQUAL "NVIDIA" AND NOT "cuda_std_20" IN_LIST CMAKE_CUDA_COMPILE_FEATURES)
    list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
    set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
  endif()
endmacro()

# The torch wheel ships its own NCCL (and other CUDA libraries) in site-packages/nvidia/*/lib,
# found at run time through libtorch_cuda's RPATH; the linker, resolving libtorch_cuda's own
# dependencies, prefers an older system copy (a CUDA toolkit's libnccl) and misses symbols that
# the wheel's has. Points the linker at the wheel's first, for `target`'s users.
function(angular_link_torch_wheel_libraries target)
  if(NOT CMAKE_SYSTEM_NAME STREQUAL "Linux" OR NOT DEFINED TORCH_INSTALL_PREFIX)
    return()
  endif()
  file(GLOB wheel_libraries LIST_DIRECTORIES true "${TORCH_INSTALL_PREFIX}/../nvidia/*/lib")
  foreach(directory IN LISTS wheel_libraries)
    target_link_options(${target} INTERFACE "LINKER:-rpath-link,${directory}")
  endforeach()
endfunction()
