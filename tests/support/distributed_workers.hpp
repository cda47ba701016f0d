#pragma once
// The rank side of the distributed tests (tests/distributed_ranks.cpp).

#include <string>

namespace angular::test {

/// Joins the group of torchrun's variables and runs the named worker: 0 when its checks pass.
int run_distributed_worker(const std::string& worker);

}  // namespace angular::test
