#pragma once
// angular's version: the one the CMake package, the Python package's metadata and
// angular.__version__ all read.

#define ANGULAR_VERSION_MAJOR 0
#define ANGULAR_VERSION_MINOR 2
#define ANGULAR_VERSION_PATCH 0
#define ANGULAR_VERSION "0.2.0"
