"""Type checkers see angular's losses (py.typed and the stubs functional.pyi, modules.pyi): a script
that uses them passes mypy, one that passes a wrong type or an unknown setting does not; the
stubs' written part is what the C++ table gives today."""

import os
import subprocess
import sys
import textwrap

import angular
from angular import _codegen

PACKAGE = os.path.dirname(os.path.abspath(angular.__file__))

GOOD = """
    import torch
    import angular
    import angular.functional as AF

    x, y = torch.randn(8, 4), torch.randint(0, 5, (8,))
    head = angular.ArcFaceLoss(5, 4, scale=32.0, margin=0.3, reduction="sum")
    head.margin = 0.4
    margin: float = head.margin
    loss: torch.Tensor = head(x, y) + AF.linear_cosface_loss(x, head.weight, y, margin=0.2, chunk_rows=4)
    loss = loss + AF.arc_loss(head.cosines(x), y, k=None, class_weight=torch.ones(5))
    ada = angular.AdaFaceLoss(5, 4, momentum=0.1)
    stats: torch.Tensor = ada.norm_mean
"""

BAD = """
    import torch
    import angular.functional as AF

    x, y = torch.randn(8, 4), torch.randint(0, 5, (8,))
    AF.linear_arcface_loss(x, torch.randn(5, 4), y, scale="large")
    AF.cosface_loss(x, y, k=3.0)
"""


def mypy(tmp_path, code):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull,
                           "--follow-imports=silent", str(script)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)


def test_a_script_using_angular_passes_mypy(tmp_path):
    out = mypy(tmp_path, GOOD)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_wrong_argument_is_caught_by_mypy(tmp_path):
    out = mypy(tmp_path, BAD)
    assert out.returncode == 1, out.stdout + out.stderr
    assert '"scale" to "linear_arcface_loss" has incompatible type "str"' in out.stdout, out.stdout
    assert 'Unexpected keyword argument "k" for "cosface_loss"' in out.stdout, out.stdout


def test_the_stubs_are_the_tables():
    for name, written in (("functional.pyi", _codegen.functional_stubs()), ("modules.pyi", _codegen.modules_stubs())):
        with open(os.path.join(PACKAGE, name)) as f:
            assert f.read().split(_codegen.STUB_MARK)[1].strip() == written.strip(), (
                f"{name} differs from the C++ table: run python -m angular._codegen --stubs python/angular")
    assert os.path.exists(os.path.join(PACKAGE, "py.typed"))
