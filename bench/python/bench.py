"""angular's Python operators against what PyTorch users run today, on the CPU, in one process
and one run: forward + backward of a features-level loss at B = 256, D = 512 and C classes,
∂W dropped between steps, the cases taking turns round after round. Time: median and range of
the rounds; memory: the most that the CPU allocator held during a step beyond what it held
before and the gradients (W, ∂W; the C++ benchmarks' counting allocator, bench/memory.hpp).

    python bench/python/bench.py [--classes 10000 100000 1000000] [--json FILE]
    python bench/python/bench.py --overhead --classes 100000    # Python / C++ alone
    python bench/python/bench.py --fixed-cost [--overhead ...]  # per call, on a tiny problem
    python bench/python/bench.py --dropins --classes 100000     # angular.compat / native modules

Rows: angular (Python) · the same function called from C++ · ArcFace as a PyTorch user writes
it, eager and under torch.compile · pytorch-metric-learning's ArcFace, CosFace and sub-center
ArcFace (if installed) · angular's softmax_loss against torch.nn.functional.linear_cross_entropy
(if this torch has it) and eager F.cross_entropy(x Wᵀ).
"""

import argparse
import json
import math
import os
import platform
import socket
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils import cpp_extension

import angular.functional as AF

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EPS = 2.0 ** -23


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def support():
    return cpp_extension.load("angular_bench_support", [os.path.join(HERE, "support.cpp")],
                              extra_include_paths=[os.path.join(ROOT, "include"), os.path.join(ROOT, "bench")],
                              extra_cflags=["-O3"], verbose=False)


def arcface_as_written(x, w, y, s=64.0, m=0.5):
    """ArcFace as a PyTorch user writes it (insightface's formula with the θ + m > π continuation)."""
    cos = F.linear(F.normalize(x), F.normalize(w))
    c = cos.gather(1, y[:, None])
    theta = torch.acos(c.clamp(-1 + EPS, 1 - EPS))
    target = torch.where(theta + m <= math.pi, torch.cos(theta + m), c - m * math.sin(m))
    return F.cross_entropy(s * cos.scatter(1, y[:, None], target), y)


def pml_losses(C, D):
    try:
        from pytorch_metric_learning import losses
    except ImportError:
        return {}
    return {
        "PML ArcFaceLoss": losses.ArcFaceLoss(num_classes=C, embedding_size=D, margin=math.degrees(0.5), scale=64),
        "PML CosFaceLoss": losses.CosFaceLoss(num_classes=C, embedding_size=D, margin=0.35, scale=64),
        "PML SubCenterArcFaceLoss": losses.SubCenterArcFaceLoss(num_classes=C, embedding_size=D,
                                                                 margin=math.degrees(0.5), scale=64, sub_centers=3),
    }


def measure(sup, cases, rounds):
    """Each case's step times (ms) and peak bytes beyond its parameters and their gradients. The
    cases run in turn, round after round, so that the machine's slow spells fall on all alike."""
    for _, step, params in cases:
        for p in params:
            p.grad = None
        step()  # warm-up (and torch.compile's compilation)
    times = {name: [] for name, _, _ in cases}
    peaks = {name: 0 for name, _, _ in cases}
    for _ in range(rounds):
        for name, step, params in cases:
            for p in params:
                p.grad = None
            base = sup.live_bytes()
            sup.reset_peak()
            start = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - start) * 1e3)
            grads = sum(p.numel() * p.element_size() for p in params)
            peaks[name] = max(peaks[name], sup.peak_bytes() - base - grads)
    for _, _, params in cases:
        for p in params:
            p.grad = None
    return times, peaks


def summary(times):
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "times_ms": times}


def run(sup, C, rounds, with_pml, with_compile):
    torch.manual_seed(0)
    B, D = 256, 512
    x = torch.randn(B, D, requires_grad=True)
    y = torch.randint(0, C, (B,))
    w = (torch.randn(C, D) / math.sqrt(D)).requires_grad_(True)
    cases = [
        ("angular linear_arcface_loss", lambda: AF.linear_arcface_loss(x, w, y).backward(), [x, w]),
        ("C++ linear_arcface_loss", lambda: sup.cpp_steps("arcface", x, w, y, 1), [x, w]),
        ("eager ArcFace (as written)", lambda: arcface_as_written(x, w, y).backward(), [x, w]),
    ]
    if with_compile:
        compiled = torch.compile(arcface_as_written)
        cases.append(("torch.compile ArcFace", lambda: compiled(x, w, y).backward(), [x, w]))
    if with_pml:
        for name, loss in pml_losses(C, D).items():
            cases.append((name, lambda loss=loss: loss(x, y).backward(), [x, *loss.parameters()]))
    cases += [
        ("angular softmax_loss", lambda: AF.softmax_loss(x, w, y).backward(), [x, w]),
        ("C++ softmax_loss", lambda: sup.cpp_steps("soft", x, w, y, 1), [x, w]),
    ]
    if hasattr(F, "linear_cross_entropy"):
        cases.append(("F.linear_cross_entropy", lambda: F.linear_cross_entropy(x, w, y).backward(), [x, w]))
    cases.append(("eager F.cross_entropy(x Wᵀ)", lambda: F.cross_entropy(x @ w.t(), y).backward(), [x, w]))
    times, peaks = measure(sup, cases, rounds)
    rows = {}
    for name, _, _ in cases:
        rows[name] = dict(summary(times[name]), peak_mib=peaks[name] / 2**20)
        print(f"C={C:>8} {name:30} median {rows[name]['median_ms']:9.1f} ms "
              f"[{min(times[name]):.1f}, {max(times[name]):.1f}]  peak beyond W, ∂W {rows[name]['peak_mib']:8.1f} MiB",
              flush=True)
    return rows


def overhead(sup, C, rounds):
    """Python / C++ of the same function, the two calls alternating alone (in both orders, so
    that neither always follows the other): in the round robin of all the cases each one's
    time also depends on what ran before it."""
    torch.manual_seed(0)
    B, D = 256, 512
    x = torch.randn(B, D, requires_grad=True)
    y = torch.randint(0, C, (B,))
    w = (torch.randn(C, D) / math.sqrt(D)).requires_grad_(True)
    rows = {}
    for margin, fn in (("arcface", AF.linear_arcface_loss), ("soft", AF.softmax_loss)):
        python = (f"{margin} from Python", lambda fn=fn: fn(x, w, y).backward(), [x, w])
        cpp = (f"{margin} from C++", lambda margin=margin: sup.cpp_steps(margin, x, w, y, 1), [x, w])
        for first, second in ((python, cpp), (cpp, python)):
            times, _ = measure(sup, [first, second], rounds)
            ratio = statistics.median(times[python[0]]) / statistics.median(times[cpp[0]])
            key = f"{margin}, {first[0]} first"
            rows[key] = {"python_ms": summary(times[python[0]]), "cpp_ms": summary(times[cpp[0]]), "ratio": ratio}
            print(f"C={C:>8} {key:36} Python {statistics.median(times[python[0]]):8.1f} ms, "
                  f"C++ {statistics.median(times[cpp[0]]):8.1f} ms: {ratio:.3f}", flush=True)
    return rows


def dropin_pairs(C, D):
    """(drop-in, the native angular module it runs as) with equal settings: the PML losses against
    the modules, PartialFC_V2 against angular.distributed.ShardedMarginLoss (one process, Gloo)."""
    import angular
    import torch.distributed as dist
    from angular.compat import insightface, pml
    from angular.distributed import ShardedMarginLoss
    if not dist.is_initialized():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    m = math.degrees(0.5)
    return {
        "PML ArcFaceLoss": (pml.ArcFaceLoss(C, D, margin=m), angular.ArcFaceLoss(C, D)),
        "PML CosFaceLoss": (pml.CosFaceLoss(C, D), angular.CosFaceLoss(C, D, margin=0.35)),
        "PML SubCenterArcFaceLoss": (pml.SubCenterArcFaceLoss(C, D, margin=m),
                                     angular.SubCenterArcFaceLoss(C, D, 3)),
        "insightface PartialFC_V2": (
            insightface.PartialFC_V2(insightface.CombinedMarginLoss(64, 1.0, 0.5, 0.0), D, C),
            ShardedMarginLoss(C, D, "arcface", {"exact_gradient": False, "continuation": False}))}


def dropins(sup, C, rounds):
    """Each drop-in's step (forward + backward, gradients dropped between steps as
    optimizer.zero_grad() does) over the native module's, the two alternating alone in both
    orders; the ratio of the medians of both orders' rounds."""
    torch.manual_seed(0)
    B, D = 256, 512
    x = torch.randn(B, D, requires_grad=True)
    y = torch.randint(0, C, (B,))
    rows = {}
    for name, (dropin, native) in dropin_pairs(C, D).items():
        a = (name, lambda f=dropin: f(x, y).backward(), [x, *dropin.parameters()])
        b = ("native", lambda f=native: f(x, y).backward(), [x, *native.parameters()])
        both = {a[0]: [], b[0]: []}
        for first, second in ((a, b), (b, a)):
            times, _ = measure(sup, [first, second], rounds)
            for key in both:
                both[key] += times[key]
        ratio = statistics.median(both[name]) / statistics.median(both["native"])
        rows[name] = {"dropin_ms": summary(both[name]), "native_ms": summary(both["native"]), "ratio": ratio}
        print(f"C={C:>8} {name:28} {statistics.median(both[name]):8.1f} ms [{min(both[name]):.1f}, "
              f"{max(both[name]):.1f}], native {statistics.median(both['native']):8.1f} ms "
              f"[{min(both['native']):.1f}, {max(both['native']):.1f}]: {ratio:.3f}", flush=True)
    return rows


def fixed_cost(sup, rounds, calls=200):
    """The cost of a call beyond its arithmetic: forward + backward of ArcFace on a tiny problem
    (B = 8, D = 16, C = 10) from Python (the function, the module) and from C++, per call, the
    median over rounds of `calls` calls each."""
    import angular
    torch.manual_seed(0)
    x = torch.randn(8, 16, requires_grad=True)
    w = torch.randn(10, 16, requires_grad=True)
    y = torch.randint(0, 10, (8,))
    head = angular.ArcFaceLoss(10, 16)
    loops = {
        "functional from Python": lambda: AF.linear_arcface_loss(x, w, y).backward(),
        "module from Python": lambda: head(x, y).backward(),
    }
    per_call = {name: [] for name in [*loops, "C++"]}
    for _ in range(rounds):
        for name, step in loops.items():
            start = time.perf_counter()
            for _ in range(calls):
                step()
            per_call[name].append((time.perf_counter() - start) * 1e3 / calls)
        per_call["C++"].append(sum(sup.cpp_steps("arcface", x, w, y, calls)) / calls)
    rows = {name: summary(times) for name, times in per_call.items()}
    for name, row in rows.items():
        extra = row["median_ms"] - rows["C++"]["median_ms"] if name != "C++" else 0.0
        print(f"{name:24} {row['median_ms'] * 1e3:8.1f} µs per call [{row['min_ms'] * 1e3:.1f}, "
              f"{row['max_ms'] * 1e3:.1f}]" + (f", {extra * 1e3:+.1f} µs beyond C++" if name != "C++" else ""),
              flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-pml", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--overhead", action="store_true",
                        help="only Python / C++ of the same functions, alternating alone")
    parser.add_argument("--fixed-cost", action="store_true", help="only the cost per call on a tiny problem")
    parser.add_argument("--dropins", action="store_true", help="only angular.compat's losses over the native modules")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("ANGULAR_BENCH_THREADS", "2")))
    sup = support()
    sup.install_counting_allocator()
    results = {"machine": cpu_model(), "cpus": os.cpu_count(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"), "B": 256, "D": 512, "rows": {}}
    if args.fixed_cost:
        results["fixed_cost"] = fixed_cost(sup, args.rounds)
        if not args.overhead:
            args.classes = []
    for C in args.classes:
        if args.overhead or args.dropins:
            results["rows"][C] = (overhead if args.overhead else dropins)(sup, C, args.rounds)
            continue
        rounds = args.rounds if C < 1_000_000 else max(3, args.rounds // 2)
        results["rows"][C] = run(sup, C, rounds, not args.no_pml and C <= 100_000, not args.no_compile)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
