// The Python module angular._C. Its library holds the repository's operator file, whose static
// initialisers register angular's operators with the dispatcher (setuptools takes no source
// from outside the package's folder, so it comes in through the include path); importing the
// module loads them.
#include "angular_ops.cpp"

#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "angular's operators (torch.ops.angular)", -1, nullptr};
  return PyModule_Create(&module);
}
