#pragma once
// A c10d process group from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT), as torch.distributed.init_process_group("env://") makes it: a TCPStore served
// by rank 0, then Gloo for CPU tensors and, where LibTorch has NCCL (USE_C10D_NCCL, which the
// torch wheel defines), NCCL for CUDA.
// c10d's Gloo header includes Gloo's own, which the torch wheel does not ship (Debian's
// libgloo-dev has them): without them, or with ANGULAR_NO_GLOO (the angular::distributed CMake
// target's, configured with ANGULAR_WITH_GLOO=OFF), init_process_group refuses to run, and
// the sharded losses still run over a process group made elsewhere.

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(USE_C10D_GLOO) && !defined(ANGULAR_NO_GLOO) && __has_include(<gloo/config.h>)
#define ANGULAR_HAS_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#else
#define ANGULAR_HAS_GLOO 0
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <c10/util/Exception.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>

namespace angular::detail {

inline std::optional<std::string> environment_variable(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

inline int64_t integer_variable(const char* name, int64_t lowest, int64_t highest) {
  const std::string text = environment_variable(name).value_or("");
  TORCH_CHECK(!text.empty(), "angular: WORLD_SIZE is set but ", name, " is not");
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  TORCH_CHECK(used == text.size() && value >= lowest && value <= highest, "angular: ", name, "=", text,
              " is not an integer in [", lowest, ", ", highest, "]");
  return value;
}

}  // namespace angular::detail

namespace angular::distributed {

/// Where this process stands among the processes of a run.
struct LaunchEnvironment {
  int64_t rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  /// torchrun's agent already serves the store at MASTER_ADDR:MASTER_PORT
  /// (TORCHELASTIC_USE_AGENT_STORE=True): every rank joins it as a client, its keys under this
  /// attempt's prefix (TORCHELASTIC_RESTART_COUNT), as torch.distributed does.
  bool agent_store = false;
  std::string store_prefix;
};

/// torchrun's variables, or nullopt where WORLD_SIZE is not set (a run of one process).
/// RANK, MASTER_ADDR and MASTER_PORT are required with WORLD_SIZE; LOCAL_RANK defaults to RANK.
inline std::optional<LaunchEnvironment> launch_environment() {
  if (!angular::detail::environment_variable("WORLD_SIZE")) return std::nullopt;
  LaunchEnvironment env;
  env.world_size = angular::detail::integer_variable("WORLD_SIZE", 1, 1 << 20);
  env.rank = angular::detail::integer_variable("RANK", 0, env.world_size - 1);
  env.local_rank = angular::detail::environment_variable("LOCAL_RANK")
                       ? angular::detail::integer_variable("LOCAL_RANK", 0, env.world_size - 1)
                       : env.rank;
  env.master_addr = angular::detail::environment_variable("MASTER_ADDR").value_or("");
  TORCH_CHECK(!env.master_addr.empty(), "angular: WORLD_SIZE is set but MASTER_ADDR is not");
  env.master_port = angular::detail::integer_variable("MASTER_PORT", 1, 65535);
  env.agent_store = angular::detail::environment_variable("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  if (env.agent_store)
    env.store_prefix = "/worker/attempt_" +
                       angular::detail::environment_variable("TORCHELASTIC_RESTART_COUNT").value_or("0") + "/";
  return env;
}

/// The process group of `env`: its collectives run Gloo on CPU tensors and, where compiled
/// with USE_C10D_NCCL and `device` is CUDA, NCCL on CUDA tensors. Every collective, the
/// rendezvous included, fails after `timeout` instead of waiting for a rank that is gone.
inline c10::intrusive_ptr<c10d::ProcessGroup> init_process_group(
    const LaunchEnvironment& env, const c10::Device& device = c10::kCPU,
    std::chrono::milliseconds timeout = std::chrono::minutes(5)) {
#if !ANGULAR_HAS_GLOO
  TORCH_CHECK(false, "angular: this program was built without c10d's Gloo backend, which needs Gloo's headers "
              "(Debian: libgloo-dev; CMake: ANGULAR_WITH_GLOO=ON): it cannot start a process group");
#endif
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(env.master_port);
  store_options.isServer = env.rank == 0 && !env.agent_store;
  store_options.numWorkers = static_cast<size_t>(env.world_size);
  store_options.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "angular: rank ", env.rank, " of ", env.world_size, " could not meet the others at ",
                env.master_addr, ":", env.master_port, " within ", timeout.count(), " ms: ", e.what());
  }
  if (!env.store_prefix.empty()) store = c10::make_intrusive<c10d::PrefixStore>(env.store_prefix, store);
  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, static_cast<int>(env.rank),
                                                       static_cast<int>(env.world_size));
#if ANGULAR_HAS_GLOO
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
  const bool loopback = env.master_addr == "127.0.0.1" || env.master_addr == "localhost";
  gloo_options->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                           : c10d::ProcessGroupGloo::createDefaultDevice());
  auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", store),
                                                          static_cast<int>(env.rank),
                                                          static_cast<int>(env.world_size), gloo_options);
  group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
  group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
#endif
  if (device.is_cuda()) {
#ifdef USE_C10D_NCCL
    auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
    nccl_options->timeout = timeout;
    auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", store),
                                                            static_cast<int>(env.rank),
                                                            static_cast<int>(env.world_size), nccl_options);
    group->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
    group->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
#else
    TORCH_CHECK(false, "angular: a process group for CUDA tensors needs NCCL: compile with USE_C10D_NCCL");
#endif
  }
  return group;
}

}  // namespace angular::distributed
