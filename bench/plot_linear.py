#!/usr/bin/env python3
"""Time per class against the number of classes, from angular_bench's JSON of the
features-level benchmarks (BM_linear_*/B/C; --benchmark_out=FILE --benchmark_out_format=json):
one line per implementation, the median over the repetitions, each point's range as a bar.

    python3 bench/plot_linear.py RESULT.json OUT.png
"""
import argparse
import json
import statistics
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "BM_linear_arc_fused": "Arc, fused",
    "BM_linear_arcface_fused": "ArcFace, fused",
    "BM_linear_products": "three bare products",
    "BM_linear_arc_module_path": "Arc, module path",
    "BM_linear_arcface_module_path": "ArcFace, module path",
}


def runs(path):
    """{implementation: {C: [seconds of each repetition]}}."""
    with open(path) as f:
        report = json.load(f)
    times = defaultdict(lambda: defaultdict(list))
    for b in report["benchmarks"]:
        if b.get("run_type") != "iteration" or not b["name"].startswith("BM_linear_") or "_cuda" in b["name"]:
            continue
        name, _, classes = b["name"].split("/")[:3]
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        times[name][int(classes)].append(b["real_time"] * scale)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result")
    parser.add_argument("out")
    args = parser.parse_args()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, by_classes in sorted(runs(args.result).items()):
        classes = sorted(by_classes)
        per_class = [[t / c * 1e6 for t in by_classes[c]] for c in classes]  # µs per class
        medians = [statistics.median(p) for p in per_class]
        spread = [[m - min(p) for m, p in zip(medians, per_class)], [max(p) - m for m, p in zip(medians, per_class)]]
        axes.errorbar(classes, medians, yerr=spread, marker="o", capsize=3, label=LABELS.get(name, name))
    axes.set_xscale("log")
    axes.set_xlabel("classes C")
    axes.set_ylabel("forward + backward per class (µs)")
    axes.set_title("Features-level step, B = 256, D = 512, float32, CPU")
    axes.set_ylim(bottom=0)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
