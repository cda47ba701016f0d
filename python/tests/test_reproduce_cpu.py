"""scripts/reproduce_cpu.py (what scripts/reproduce-cpu runs) on a tiny plan, with the dev build's
angular-compare, on the real Fashion-MNIST: killed after its first finished run and started
again, it trains no finished run twice, and writes its tables (mean ± sd of the runs' own
numbers) and its three pictures."""

import csv
import os
import re
import signal
import statistics
import subprocess
import sys

import pytest

from processes import run

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DRIVER = os.path.join(ROOT, "scripts", "reproduce_cpu.py")
COMPARE = os.path.join(ROOT, "build", "dev", "examples", "angular-compare")
# 14 runs of 64 images: budget 1 (4 losses × 2 seeds), k = 8 (2 seeds), the 2-D features (4).
TINY = ["--train-limit", "64", "--test-limit", "100", "--budgets", "1", "--seeds", "2", "--k", "8", "--k-epochs",
        "1", "--features-epochs", "1", "--batch-size", "16", "--threads", "1"]


def finished_runs(out):
    """{run folder: its checkpoint's modification time} of every run with a summary.json."""
    runs = {}
    for folder, _, files in os.walk(out):
        if "summary.json" in files:
            runs[folder] = os.stat(os.path.join(folder, "checkpoint.pt")).st_mtime_ns
    return runs


@pytest.mark.skipif(not os.path.exists(COMPARE), reason="needs the dev build (scripts/test builds it first)")
def test_reproduce_cpu_resumes_and_reports(tmp_path):
    out = str(tmp_path / "reproduce")
    command = [sys.executable, DRIVER, "--compare", COMPARE, "--out", out, *TINY]
    # Killed (with its angular-compare) once the first run has finished.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("[1/14]"):
                break
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert lines and lines[-1].startswith("[1/14] budget-1: soft seed 1"), "".join(lines)
    assert "ETA" in lines[-1]
    before = finished_runs(out)
    assert len(before) >= 1

    output = run(command, 600)
    assert re.search(rf"\({len(before)} runs done before\)", output), output
    after = finished_runs(out)
    assert len(after) == 14
    for folder, written in before.items():  # not trained again
        assert after[folder] == written, folder
    assert "[14/14]" in output

    for picture in ("error-vs-budget.png", "wcintra-vs-k.png", "features-2d.png"):
        assert os.path.getsize(os.path.join(out, picture)) > 10_000, picture
    # The report's cells are the mean ± sd of the runs' rows in the parts' compare.csv.
    with open(os.path.join(out, "budget-1", "compare.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["loss"] == "arc" and r["seed"] in ("1", "2")]
    errors = [float(r["test_error_percent"]) for r in rows]
    with open(os.path.join(out, "reproduction.md")) as f:
        report = f.read()
    cell = f"| Arc | {statistics.mean(errors):.2f} ± {statistics.stdev(errors):.2f} | 6.04 |"
    assert cell in report, report
    assert "| 8 |" in report and "(default)" in report  # the k table: k = 8 and the default's runs
