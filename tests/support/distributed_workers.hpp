#pragma once
// The rank side of the distributed tests (tests/distributed_ranks.cpp,
// tests/distributed_fault_ranks.cpp and tests/distributed_train_ranks.cpp).

#include <angular/distributed/collectives.hpp>

#include <string>

namespace angular::test {

/// Joins the group of torchrun's variables and runs the named worker: 0 when its checks pass.
int run_distributed_worker(const std::string& worker);

using ProcessGroupPtr = angular::distributed::ProcessGroupPtr;

/// What one sharded step sends; bad input and a dead rank on one rank (distributed_fault_ranks.cpp).
int communication_worker(const ProcessGroupPtr& group);
int bad_input_everywhere_worker(const ProcessGroupPtr& group);
int dead_rank_worker(const ProcessGroupPtr& group);
int group_not_kept_by_graph_worker(const ProcessGroupPtr& group);

/// Class sampling over the ranks (distributed_sampling_ranks.cpp).
int sampled_equals_kept_classes_worker(const ProcessGroupPtr& group);
int unsampled_is_exact_worker(const ProcessGroupPtr& group);

/// The data-parallel trainer's ResNet step and its sharded head's evaluation against one
/// process (distributed_train_ranks.cpp).
int data_parallel_resnet_equals_single(const ProcessGroupPtr& group);
int sharded_evaluation_equals_single(const ProcessGroupPtr& group);

/// The variable naming the folder where train_recording_allocations writes each rank's record.
constexpr const char* kAllocationsVariable = "ANGULAR_TEST_ALLOCATIONS";
/// angular-train's main() (argc, argv as angular-train's) with the CPU allocator counted: writes
/// "<largest allocation> <peak live bytes>" to $ANGULAR_TEST_ALLOCATIONS/rank<RANK>; returns
/// angular-train's exit status.
int train_recording_allocations(int argc, char** argv);

}  // namespace angular::test
