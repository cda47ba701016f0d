#!/usr/bin/env python3
"""The paper's four claims, checked at the scale of a CPU (scripts/reproduce-cpu builds
angular-compare and runs this). On the real Fashion-MNIST, ResNet20, batch 256 and Table 1's
learning rate per loss, complete one-cycle schedules on the first --train-limit training
images, tested on the whole test set:

  budget-E/     Soft, Center, ArcFace and Arc for E epochs (--budgets), --seeds seeds each
  k-K/          Arc with k = K (--k) for --k-epochs epochs, the same seeds (the default k's
                runs are those of budget-(--k-epochs))
  features-2d/  the four losses with --embedding-dim 2, one seed (the paper's Fig. 6)

Each part is an `angular-compare --resume` run: a finished run is read back, not trained again,
and an interrupted one continues after its last completed epoch. Then, in --out:

  reproduction.md     the tables (mean ± sample sd over the seeds) beside the paper's numbers,
                      and Arc's difference to each loss with its standard error
  error-vs-budget.png test error against the budget per loss, with error bars (Table 4)
  wcintra-vs-k.png    WCIntra and test error against k (Fig. 5)
  features-2d.png     the 2-D test features of the four losses (Fig. 6)
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)
from plot import plot_features  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LOSSES = ["soft", "center", "arcface", "arc"]
TITLES = {"soft": "Soft", "center": "Center", "arcface": "ArcFace", "arc": "Arc"}
# The paper's Fashion-MNIST test error, ResNet20, 60 epochs on the whole training set (Table 1's
# setting; its results table): what these short runs are read against.
PAPER_ERROR = {"soft": 6.30, "center": 6.04, "arcface": 6.27, "arc": 6.04}
DEFAULT_K = max(3.0, 2 / math.pi * math.log(99 * (10 - 1)))  # Arc's default for 10 classes


class Part:
    """One angular-compare run of the plan: its folder, losses, epochs, seeds and options."""

    def __init__(self, name, losses, epochs, seeds, extra=()):
        self.name, self.losses, self.epochs, self.seeds, self.extra = name, losses, epochs, seeds, list(extra)

    def run_folder(self, out, seed, loss):
        if len(self.seeds) == 1:
            return os.path.join(out, self.name, loss)
        return os.path.join(out, self.name, f"seed-{seed}", loss)

    def runs(self):
        return [(seed, loss) for seed in self.seeds for loss in self.losses]


def make_plan(args):
    seeds = list(range(1, args.seeds + 1))
    parts = [Part(f"budget-{e}", LOSSES, e, seeds) for e in args.budgets]
    parts += [Part(f"k-{k:g}", ["arc"], args.k_epochs, seeds, ["--k", repr(k)]) for k in args.k]
    parts.append(Part("features-2d", LOSSES, args.features_epochs, [1], ["--embedding-dim", "2"]))
    return parts


def finished(folder, epochs):
    """Whether the run in `folder` has done all its `epochs` (its summary.json says so)."""
    try:
        with open(os.path.join(folder, "summary.json")) as f:
            return json.load(f).get("epochs_done") == epochs
    except (OSError, ValueError):
        return False


def minutes(seconds):
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def run_plan(args, parts):
    """Runs every part's angular-compare, a progress line per finished run with the plan's ETA
    (from the seconds per image-epoch of the runs trained so far)."""
    total_runs = sum(len(p.runs()) for p in parts)
    done_before = [(p, s, l) for p in parts for s, l in p.runs() if finished(p.run_folder(args.out, s, l), p.epochs)]
    # The work of a run: its epochs of the training subset.
    left = sum(p.epochs * len(p.runs()) for p in parts) - sum(p.epochs for p, _, _ in done_before)
    print(f"plan: {total_runs} runs in {len(parts)} parts, {left} epochs of {args.train_limit} images to train"
          f"{f' ({len(done_before)} runs done before)' if done_before else ''}; results in {args.out}", flush=True)
    counted, spent, runs_done = 0, 0.0, len(done_before)
    start = time.monotonic()
    for part in parts:
        folder = os.path.join(args.out, part.name)
        os.makedirs(folder, exist_ok=True)
        todo = [(s, l) for s, l in part.runs() if not finished(part.run_folder(args.out, s, l), part.epochs)]
        if not todo:
            continue
        command = [args.compare, "--dataset", "fashion-mnist", "--epochs", str(part.epochs), "--train-limit",
                   str(args.train_limit), "--test-limit", str(args.test_limit), "--threads", str(args.threads),
                   "--losses", *part.losses, "--resume", "--out", folder, *part.extra]
        command += ["--seeds", ",".join(map(str, part.seeds))] if len(part.seeds) > 1 else ["--seed", str(part.seeds[0])]
        if args.batch_size:
            command += ["--batch-size", str(args.batch_size)]
        with open(os.path.join(folder, "log.txt"), "a") as log:
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
            run_start = time.monotonic()
            for line in process.stdout:
                log.write(line)
                log.flush()
                fields = line.split()
                if len(fields) < 3 or fields[0] == "loss" or fields[1] in ("mean", "sd"):
                    continue
                loss, seed = fields[0], int(fields[1])
                elapsed, run_start = time.monotonic() - run_start, time.monotonic()
                runs_done += 1
                if (seed, loss) in todo:  # trained now, not read back
                    counted += part.epochs
                    spent += elapsed
                    left -= part.epochs
                eta = minutes(left * spent / counted) if counted else "after the first run"
                print(f"[{runs_done}/{total_runs}] {part.name}: {loss} seed {seed}, test error {fields[2]} %, "
                      f"{minutes(elapsed)}; {minutes(time.monotonic() - start)} so far, ETA {eta}", flush=True)
            if process.wait() != 0:
                sys.exit(f"reproduce-cpu: angular-compare failed in {folder} (exit {process.returncode}); "
                         f"its output: {os.path.join(folder, 'log.txt')}")
    print(f"plan done in {minutes(time.monotonic() - start)}", flush=True)


def read_summaries(folder):
    """{loss: {"mean": row, "sd": row, "n": count}} from a part's compare.csv (a single-seed
    part: the run's row as the mean, sd NaN)."""
    with open(os.path.join(folder, "compare.csv")) as f:
        rows = list(csv.DictReader(f))
    out = {}
    for row in rows:
        numbers = {k: float(v) for k, v in row.items() if k not in ("loss", "seed")}
        entry = out.setdefault(row["loss"], {"n": 0})
        if row["seed"] in ("mean", "sd"):
            entry[row["seed"]] = numbers
        else:
            entry["n"] += 1
            entry.setdefault("runs", []).append(numbers)
    for entry in out.values():
        if "mean" not in entry:
            entry["mean"], entry["sd"] = entry["runs"][0], {k: math.nan for k in entry["runs"][0]}
    return out


def cell(entry, column, digits):
    mean, sd = entry["mean"][column], entry["sd"][column]
    return f"{mean:.{digits}f}" if math.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def difference(a, b, column):
    """a − b of the means, and its standard error from the two samples' sds."""
    d = a["mean"][column] - b["mean"][column]
    se = math.sqrt(a["sd"][column] ** 2 / a["n"] + b["sd"][column] ** 2 / b["n"])
    return d, se


def report(args, parts):
    budgets = {p.epochs: read_summaries(os.path.join(args.out, p.name)) for p in parts if p.name.startswith("budget")}
    ks = {float(p.extra[1]): read_summaries(os.path.join(args.out, p.name))["arc"]
          for p in parts if p.name.startswith("k-")}
    if args.k_epochs in budgets:
        ks[DEFAULT_K] = budgets[args.k_epochs]["arc"]
    seeds = args.seeds
    md = [f"# Reproduction at CPU scale\n",
          f"ResNet20 on Fashion-MNIST, the first {args.train_limit} training images, "
          f"{f'the first {args.test_limit} test images' if args.test_limit else 'the whole test set'}, "
          f"batch {args.batch_size or 256}, Table 1's learning rates, "
          f"{seeds} seeds; mean ± sample standard deviation over the seeds.\n"]
    for column, title, digits in (("test_error_percent", "Test error %", 2), ("wc_intra", "WCIntra (rad)", 4),
                                  ("map_at_r", "MAP@R", 4)):
        md.append(f"\n## {title} against the budget (epochs)\n")
        header = "| loss | " + " | ".join(f"{e} epochs" for e in budgets)
        header += " | paper, 60 epochs |" if column == "test_error_percent" else " |"
        md += [header, "|---" * (len(budgets) + 1 + (column == "test_error_percent")) + "|"]
        for loss in LOSSES:
            row = f"| {TITLES[loss]} | " + " | ".join(cell(b[loss], column, digits) for b in budgets.values())
            md.append(row + (f" | {PAPER_ERROR[loss]:.2f} |" if column == "test_error_percent" else " |"))
    md.append("\n## Arc − each loss (difference of the means ± its standard error)\n")
    md += ["| budget | column | " + " | ".join(TITLES[l] for l in LOSSES[:3]) + " |", "|---|---|---|---|---|"]
    for epochs, b in budgets.items():
        for column in ("test_error_percent", "wc_intra"):
            diffs = [difference(b["arc"], b[l], column) for l in LOSSES[:3]]
            md.append(f"| {epochs} | {column} | " + " | ".join(f"{d:+.3f} ± {se:.3f}" for d, se in diffs) + " |")
    if ks:
        md.append(f"\n## Arc's k ({args.k_epochs} epochs)\n")
        md += ["| k | test error % | WCIntra (rad) | MAP@R |", "|---|---|---|---|"]
        for k in sorted(ks):
            name = f"{k:.2f} (default)" if k == DEFAULT_K else f"{k:g}"
            md.append(f"| {name} | {cell(ks[k], 'test_error_percent', 2)} | {cell(ks[k], 'wc_intra', 4)} | "
                      f"{cell(ks[k], 'map_at_r', 4)} |")
    features = os.path.join(args.out, "features-2d")
    if os.path.exists(os.path.join(features, "compare.csv")):
        f2 = read_summaries(features)
        md.append(f"\n## 2-D features ({args.features_epochs} epochs, one seed)\n")
        md += ["| loss | test error % | WCIntra (rad) |", "|---|---|---|"]
        md += [f"| {TITLES[l]} | {f2[l]['mean']['test_error_percent']:.2f} | {f2[l]['mean']['wc_intra']:.4f} |"
               for l in LOSSES if l in f2]
    with open(os.path.join(args.out, "reproduction.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    pictures = [plot_budgets(args.out, budgets)]
    if ks:
        pictures.append(plot_k(args.out, ks, args.k_epochs))
    if os.path.exists(os.path.join(features, "compare.csv")):
        path = os.path.join(args.out, "features-2d.png")
        plot_features({TITLES[l]: os.path.join(features, l) for l in LOSSES}, path)
        pictures.append(path)
    print("\n".join(md))
    print("\n".join([os.path.join(args.out, "reproduction.md")] + pictures))


def plot_budgets(out, budgets):
    epochs = sorted(budgets)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, column, label in ((axes[0], "test_error_percent", "test error %"), (axes[1], "wc_intra", "WCIntra (rad)")):
        for i, loss in enumerate(LOSSES):
            shift = [e * (1 + 0.03 * (i - 1.5)) for e in epochs]  # error bars side by side
            ax.errorbar(shift, [budgets[e][loss]["mean"][column] for e in epochs],
                        yerr=[budgets[e][loss]["sd"][column] for e in epochs], marker="o", capsize=3,
                        label=TITLES[loss])
        ax.set_xscale("log", base=2)
        ax.set_xticks(epochs, [str(e) for e in epochs])
        ax.set_xlabel("epochs (complete one-cycle schedules)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Budget: mean ± sd over seeds (paper's Table 4 as a plot)")
    fig.tight_layout()
    path = os.path.join(out, "error-vs-budget.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_k(out, ks, epochs):
    k = sorted(ks)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, column, label in ((axes[0], "wc_intra", "WCIntra (rad)"), (axes[1], "test_error_percent", "test error %")):
        ax.errorbar(k, [ks[v]["mean"][column] for v in k], yerr=[ks[v]["sd"][column] for v in k], marker="o",
                    capsize=3)
        ax.axvline(DEFAULT_K, color="gray", linestyle=":", label=f"default k = {DEFAULT_K:.2f}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(k, [f"{v:.3g}" for v in k])
        ax.set_xlabel("k")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Arc's k, {epochs} epochs: mean ± sd over seeds (paper's Fig. 5)")
    fig.tight_layout()
    path = os.path.join(out, "wcintra-vs-k.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def numbers(text, kind):
    return [kind(v) for v in text.split(",")]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", required=True, help="the angular-compare program")
    parser.add_argument("--out", default="runs/reproduce-cpu", help="results folder (default: %(default)s)")
    parser.add_argument("--train-limit", type=int, default=10240, help="training images (default: %(default)s)")
    parser.add_argument("--test-limit", type=int, default=0, help="test images (default 0: all 10 000)")
    parser.add_argument("--budgets", type=lambda t: numbers(t, int), default=[1, 2, 4],
                        help="epochs of the budget runs (default: 1,2,4)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1 to N per run (default: %(default)s)")
    parser.add_argument("--k", type=lambda t: numbers(t, float), default=[2.0, 3.0, 8.0, 16.0],
                        help="Arc's k beside the default (default: 2,3,8,16)")
    parser.add_argument("--k-epochs", type=int, default=2, help="epochs of the k runs (default: %(default)s)")
    parser.add_argument("--features-epochs", type=int, default=2, help="epochs of the 2-D runs (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=0, help="batch size (default: Table 1's 256)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: %(default)s)")
    args = parser.parse_args()
    parts = make_plan(args)
    run_plan(args, parts)
    report(args, parts)


if __name__ == "__main__":
    main()
