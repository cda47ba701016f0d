// The translation unit that owns the project's precompiled LibTorch header (CMakeLists.txt's
// angular_pch), which the tests, trainers and benchmarks reuse.
