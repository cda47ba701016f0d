"""`import angular` as the first line of a fresh interpreter, the version, and what importing costs."""

import os
import re
import statistics
import subprocess
import sys

import angular

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def run(code):
    # A fresh interpreter in a folder without the repository: the installed package, nothing else.
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd="/", check=True).stdout


def test_import_angular_is_a_first_line():
    out = run("import angular\n"
              "import torch\n"
              "head = angular.ArcFaceLoss(5, 4)\n"
              "print(angular.__version__, float(head(torch.randn(3, 4), torch.tensor([0, 1, 2]))))")
    version, loss = out.split()
    assert version == angular.__version__ and float(loss) > 0


def test_the_version_is_the_cmake_packages():
    with open(os.path.join(ROOT, "include", "angular", "version.hpp")) as f:
        assert angular.__version__ == re.search(r'#define ANGULAR_VERSION "([^"]+)"', f.read()).group(1)
    from importlib.metadata import version
    assert version("angular") == angular.__version__


def test_importing_angular_costs_little_beyond_torch():
    """Median of 5 fresh interpreters: import angular after torch. The goal is 0.2 s; the bound is
    generous for a loaded machine (bench/RESULTS.md has the measured numbers)."""
    code = ("import time; import torch; t = time.perf_counter(); import angular; "
            "print(time.perf_counter() - t)")
    costs = [float(run(code)) for _ in range(5)]
    assert statistics.median(costs) < 0.5, costs
