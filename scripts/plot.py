#!/usr/bin/env python3
"""Pictures of a run folder (angular-train --out) or a comparison folder (angular-compare
--out, one run folder per loss):

  features.png     2-D test features per loss, coloured by class (paper Fig. 6; runs made
                   with --embedding-dim 2; otherwise the first two principal components)
  histograms.png   target-angle histograms of one class over the epochs (Fig. 7)
  similarity.png   cosine-similarity matrix of 10 sampled test features per class (Fig. 8)
  curves.png       training loss and accuracy over the optimizer steps (steps.csv), and with
                   two or more epochs the test accuracy and WCIntra per epoch

    python3 scripts/plot.py DIR [--class N]
Prints the paths of the PNGs it wrote (into DIR).
"""
import argparse
import csv
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def runs_in(folder):
    """{name: run folder} for a run folder or a comparison folder."""
    if os.path.exists(os.path.join(folder, "metrics.csv")):
        return {os.path.basename(os.path.normpath(folder)): folder}
    runs = {}
    for name in ("soft", "center", "arcface", "arc"):
        path = os.path.join(folder, name)
        if os.path.exists(os.path.join(path, "metrics.csv")):
            runs[name] = path
    if not runs:
        sys.exit(f"{folder}: no metrics.csv here nor in soft/center/arcface/arc")
    return runs


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def features_of(run):
    rows = read_rows(os.path.join(run, "test_features.csv"))
    labels = np.array([int(r["label"]) for r in rows])
    x = np.array([[float(v) for k, v in r.items() if k != "label"] for r in rows])
    return x, labels


def grid(n):
    cols = min(n, 4)
    return math.ceil(n / cols), cols


def plot_features(runs, out):
    rows, cols = grid(len(runs))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for ax, (name, run) in zip(axes.flat, runs.items()):
        x, y = features_of(run)
        if x.shape[1] > 2:  # project on the first two principal components
            centered = x - x.mean(0)
            _, _, vt = np.linalg.svd(centered, full_matrices=False)
            x = centered @ vt[:2].T
            ax.set_title(f"{name} (PCA of {vt.shape[1]}-D)")
        else:
            ax.set_title(name)
        ax.scatter(x[:, 0], x[:, 1], c=y, cmap="tab10", s=3)
        ax.set_aspect("equal", adjustable="datalim")
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_histograms(runs, out, klass):
    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3.5), squeeze=False)
    for ax, (name, run) in zip(axes.flat, runs.items()):
        rows = [r for r in read_rows(os.path.join(run, "histograms.csv")) if int(r["class"]) == klass]
        epochs = sorted({int(r["epoch"]) for r in rows})
        cmap = plt.get_cmap("viridis")
        for i, e in enumerate(epochs):
            sel = [r for r in rows if int(r["epoch"]) == e]
            starts = np.array([float(r["bin_start"]) for r in sel])
            counts = np.array([int(r["count"]) for r in sel])
            ax.step(starts, counts, where="post", color=cmap(i / max(1, len(epochs) - 1)), label=f"epoch {e}")
        ax.set_title(f"{name}: class {klass}")
        ax.set_xlabel("angle to its class vector (rad)")
        ax.set_ylabel("test samples")
        if len(epochs) <= 6:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_similarity(runs, out):
    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3.8), squeeze=False)
    for ax, (name, run) in zip(axes.flat, runs.items()):
        x, y = features_of(run)
        picks = np.concatenate([np.flatnonzero(y == c)[:10] for c in np.unique(y)])
        f = x[picks] / np.maximum(np.linalg.norm(x[picks], axis=1, keepdims=True), 1e-12)
        image = ax.imshow(f @ f.T, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(f"{name}: cosine similarity")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=list(axes.flat), shrink=0.8)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def smoothed(values, window):
    """Running mean over the last `window` values (fewer at the start)."""
    sums = np.cumsum(np.insert(np.asarray(values, dtype=float), 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    ends = np.arange(1, len(values) + 1)
    return (sums[ends] - sums[ends - counts]) / counts


def plot_curves(runs, out):
    epochs_of = {name: read_rows(os.path.join(run, "metrics.csv")) for name, run in runs.items()}
    per_epoch = max(len(rows) for rows in epochs_of.values()) >= 2
    fig, axes = plt.subplots(2 if per_epoch else 1, 2, figsize=(10, 7.6 if per_epoch else 3.8), squeeze=False)
    (loss, acc) = axes[0]
    for name, run in runs.items():
        path = os.path.join(run, "steps.csv")
        steps = read_rows(path) if os.path.exists(path) else []  # runs made before steps.csv
        if not steps:
            continue
        per_epoch_steps = max(int(r["step"]) for r in steps)
        x = [int(r["epoch"]) - 1 + int(r["step"]) / per_epoch_steps for r in steps]
        window = max(1, len(steps) // 20)
        loss.plot(x, smoothed([float(r["loss"]) for r in steps], window), label=name)
        acc.plot(x, smoothed([float(r["accuracy"]) for r in steps], window), label=name)
    loss.set_title("training loss (batch mean, smoothed)")
    acc.set_title("training accuracy (batch, smoothed)")
    for ax in (loss, acc):
        ax.set_xlabel("epoch")
        ax.legend()
    if per_epoch:
        test, wc = axes[1]
        for name, rows in epochs_of.items():
            epochs = [int(r["epoch"]) for r in rows]
            test.plot(epochs, [float(r["test_acc"]) for r in rows], marker="o", label=name)
            wc.plot(epochs, [float(r["wc_intra"]) for r in rows], marker="o", label=name)
        test.set_title("test accuracy")
        wc.set_title("WCIntra (rad)")
        for ax in (test, wc):
            ax.set_xlabel("epoch")
            ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--class", dest="klass", type=int, default=0, help="class of the histograms (default 0)")
    args = parser.parse_args()
    runs = runs_in(args.folder)
    outputs = {
        "features.png": lambda p: plot_features(runs, p),
        "histograms.png": lambda p: plot_histograms(runs, p, args.klass),
        "similarity.png": lambda p: plot_similarity(runs, p),
        "curves.png": lambda p: plot_curves(runs, p),
    }
    for name, draw in outputs.items():
        path = os.path.join(args.folder, name)
        draw(path)
        print(path)


if __name__ == "__main__":
    main()
