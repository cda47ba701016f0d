// A libFuzzer binary for the target named by ANGULAR_FUZZ_TARGET (see targets.hpp);
// scripts/fuzz builds and runs one per target.

#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ANGULAR_FUZZ_TARGET(data, size);
  return 0;
}
