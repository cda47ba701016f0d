"""angular-train's run folder from Python: metrics.csv, steps.csv, histograms.csv,
test_features.csv and summary.json, then scripts/plot.py's pictures."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import torch

PLOT = os.path.normpath(os.path.join(os.path.abspath(__file__), "..", "..", "..", "scripts", "plot.py"))
HISTOGRAM_BINS, FEATURES_PER_CLASS = 36, 200  # as angular-train's
METRICS = ["epoch", "lr", "train_loss", "train_acc", "test_acc", "wc_intra", "w_inter", "c_inter", "seconds", "p_at_1",
           "r_precision", "map_at_r", "images_per_second"]


def write_atomically(path, text):
    """Readers (and a crash) see the old file or the new one, never half of one."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def csv_text(header, rows):
    number = lambda v: f"{v:.8g}" if isinstance(v, float) else str(v)  # noqa: E731
    return ",".join(header) + "\n" + "".join(",".join(map(number, row)) + "\n" for row in rows)


class RunFolder:
    """angular-train's run folder (examples/train/run_files.hpp), its files rewritten after each epoch."""

    def __init__(self, path):
        os.makedirs(path, exist_ok=True)
        self.path, self.rows, self.steps, self.histograms = path, [], [], []

    def write(self, name, text):
        write_atomically(os.path.join(self.path, name), text)

    def add_epoch(self, row, steps, histogram, features, labels):
        self.rows.append(row)
        self.steps += steps
        self.histograms += [(row["epoch"], c, math.pi * b / HISTOGRAM_BINS, n)
                            for c, counts in enumerate(histogram.tolist()) for b, n in enumerate(counts)]
        keep = np.sort(np.concatenate([np.flatnonzero(labels.numpy() == c)[:FEATURES_PER_CLASS]
                                       for c in labels.unique().tolist()]))
        self.write("test_features.csv", csv_text(["label", *(f"f{d}" for d in range(features.shape[1]))],
                                                 [(int(labels[i]), *features[i].tolist()) for i in keep]))
        self.write("steps.csv", csv_text(["epoch", "step", "loss", "accuracy"], self.steps))
        self.write("histograms.csv", csv_text(["epoch", "class", "bin_start", "count"], self.histograms))
        self.write("metrics.csv", csv_text(METRICS, [[r[c] for c in METRICS] for r in self.rows]))

    def write_summary(self, run, train_seconds, wall_seconds):
        last, a = self.rows[-1], run.args
        rates = [r["images_per_second"] for r in self.rows]
        self.write("summary.json", json.dumps({
            **{k: last[k] for k in ("wc_intra", "w_inter", "c_inter", "p_at_1", "r_precision", "map_at_r")},
            "test_accuracy": last["test_acc"], "test_error_percent": 100 * (1 - last["test_acc"]), "epochs": a.epochs,
            "epochs_done": last["epoch"],
            "options": {"dataset": "fashion-mnist", "network": a.model, "loss": a.loss, "batch_size": a.batch_size,
                        "lr": a.lr, "embedding_dim": a.embedding_dim, "train_limit": a.train_subset,
                        "test_limit": a.test_subset, "seed": a.seed, "threads": torch.get_num_threads(),
                        "processes": run.ranks.world, "head": a.head, "compile": a.compile, "max_steps": a.max_steps,
                        "loss_module": repr(run.head)},
            "torch_version": torch.__version__, "device": a.device, "wall_seconds": wall_seconds,
            "train_images_per_second": sum(r * s for r, s in zip(rates, train_seconds)) / sum(train_seconds),
            "train_images_per_second_per_epoch": rates}, indent=2) + "\n")

    def draw(self):
        """scripts/plot.py's pictures of the folder."""
        subprocess.run([sys.executable, PLOT, self.path], check=True)
