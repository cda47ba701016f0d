// The Python module angular._C. Its library holds the repository's operator file, whose static
// initialisers register angular's operators with the dispatcher (it comes in through the include
// path: the package's build takes the repository's files as they are); importing the module
// loads them. torch must be imported first: the library links against torch's.
#include "angular_ops.cpp"

#include <angular/version.hpp>

#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "angular's operators (torch.ops.angular)", -1, nullptr};
  PyObject* m = PyModule_Create(&module);
  if (m != nullptr && PyModule_AddStringConstant(m, "__version__", ANGULAR_VERSION) != 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
