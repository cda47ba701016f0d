"""The package installs like any other, each way checked in a fresh virtual environment holding
torch: the README's install command run verbatim from the repository's root; the sdist of
`python -m build`; its wheel. Each environment then imports angular as its first line and trains a
step. The environments take this one's torch (and pip, setuptools) through a .pth file rather than
downloading its 3 GB again; they hold no angular of their own until it is installed there.

The three builds compile angular._C (about 2 minutes each on 2 cores): they run two at a time."""

import concurrent.futures
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

import angular

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD_TIMEOUT = 1200
SMOKE = ("import angular\n"
         "import torch\n"
         "head = angular.CosFaceLoss(10, 8, scale=16.0)\n"
         "x, y = torch.randn(32, 8, requires_grad=True), torch.randint(0, 10, (32,))\n"
         "loss = head(x, y)\n"
         "loss.backward()\n"
         "assert x.grad.abs().sum() > 0 and head.weight.grad.abs().sum() > 0\n"
         "print(angular.__file__, angular.__version__, float(loss))\n")


def environment(venv):
    """The environment a user has after `source venv/bin/activate`: no ANGULAR_* variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANGULAR_", "PYTHON", "MAX_JOBS", "CXX", "CC"))}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv}/bin:{env['PATH']}")
    return env


def fresh_venv(path):
    """A venv whose own site-packages is empty and which sees this one's packages but angular's."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    shared = path / "torch-from-the-test-venv"
    shared.mkdir()
    here = sysconfig.get_paths()["purelib"]
    for entry in os.listdir(here):
        if not entry.startswith(("angular", "__editable__")):
            os.symlink(os.path.join(here, entry), shared / entry)
    site = glob.glob(str(path / "lib" / "python3*" / "site-packages"))[0]
    with open(os.path.join(site, "shared.pth"), "w") as f:
        f.write(str(shared) + "\n")
    return path


def run(command, venv, cwd, timeout=BUILD_TIMEOUT):
    out = subprocess.run(command, shell=isinstance(command, str), cwd=cwd, env=environment(venv), capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f"{command} in {cwd}:\n{out.stdout[-4000:]}\n{out.stderr[-8000:]}"
    return out


def smoke(venv):
    """`import angular` first, in a fresh interpreter of `venv`, from a folder outside the repository."""
    out = run([str(venv / "bin" / "python"), "-c", SMOKE], venv, cwd="/", timeout=300)
    location, version, loss = out.stdout.split()
    assert location.startswith(str(venv)), location  # the venv's own angular, not this one's
    assert version == angular.__version__ and float(loss) > 0
    return out


def readme_install_command():
    with open(os.path.join(ROOT, "README.md")) as f:
        section = f.read().split("## From Python", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return next(line.split("#")[0].strip() for line in block.splitlines() if "pip install" in line)


def install_as_the_readme_says(tmp):
    venv = fresh_venv(tmp / "readme")
    out = run(readme_install_command(), venv, cwd=ROOT)
    return venv, out


def build_sdist_and_wheel(tmp):
    dist = tmp / "dist"
    venv = fresh_venv(tmp / "builder")
    run([str(venv / "bin" / "python"), "-m", "build", "--no-isolation", "--outdir", str(dist), ROOT], venv, cwd=ROOT)
    (sdist,) = glob.glob(str(dist / "angular-*.tar.gz"))
    (wheel,) = glob.glob(str(dist / "angular-*.whl"))
    return sdist, wheel


def install(artifact, venv):
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--no-build-isolation", "--no-deps", artifact], venv, cwd=str(venv))


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="no C++ compiler")
def test_readme_command_sdist_and_wheel_each_install_into_a_fresh_venv(tmp_path):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        readme = pool.submit(install_as_the_readme_says, tmp_path)
        sdist, wheel = build_sdist_and_wheel(tmp_path)
        sdist_venv = fresh_venv(tmp_path / "from-sdist")
        from_sdist = pool.submit(install, sdist, sdist_venv)
        wheel_venv = fresh_venv(tmp_path / "from-wheel")
        install(wheel, wheel_venv)
        readme_venv, _ = readme.result()
        from_sdist.result()
    for venv in (readme_venv, sdist_venv, wheel_venv):
        smoke(venv)


def test_the_sdist_carries_what_the_build_needs(tmp_path):
    """The sdist lists the headers, operators and kernels the extension compiles from, the
    version header, the license; and no build output."""
    venv = fresh_venv(tmp_path / "sdist-only")
    dist = tmp_path / "dist"
    run([str(venv / "bin" / "python"), "-m", "build", "--sdist", "--no-isolation", "--outdir", str(dist), ROOT], venv,
        cwd=ROOT, timeout=300)
    (sdist,) = glob.glob(str(dist / "angular-*.tar.gz"))
    import tarfile
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("setup.py", "pyproject.toml", "LICENSE", "README.md", "include/angular/version.hpp",
                   "include/angular/loss.hpp", "ops/angular_ops.cpp", "cuda/angular_cuda.cu", "python/csrc/module.cpp",
                   "python/angular/py.typed", "python/angular/_codegen.py"):
        assert needed in names, needed
    assert not any(n.startswith(("build/", "python/tests/")) for n in names)
