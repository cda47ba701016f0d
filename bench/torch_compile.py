"""The composite margin cross-entropy in PyTorch, eager and under torch.compile, timed with
CUDA events the way bench/margin_bench.cpp times its CUDA variants (forward + backward on
cos [B, C], fp32), so the CUDA table has the compiler's result beside ours.

    python3 bench/torch_compile.py [--json FILE]
"""
import argparse
import json
import math

import torch
import torch.nn.functional as F

EPS = 2.0 ** -23  # angular's arccos clamp


def arc(cos, target, k=4.0):
    theta = torch.acos(cos.clamp(-1 + EPS, 1 - EPS))
    return F.cross_entropy(k * (math.pi / 2 - theta), target)


def arcface(cos, target, s=64.0, m=0.5):
    c = cos.gather(1, target[:, None])
    theta = torch.acos(c.clamp(-1 + EPS, 1 - EPS))
    margin = torch.where(theta + m <= math.pi, torch.cos(theta + m), c - m * math.sin(m))
    return F.cross_entropy(s * cos.scatter(1, target[:, None], margin), target)


def time_ms(loss, cos, target, repeats=20):
    for _ in range(3):
        loss(cos, target).backward()
        cos.grad = None
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        loss(cos, target).backward()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
        cos.grad = None
    times.sort()
    return times[len(times) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    args = parser.parse_args()
    rows, results = 512, []
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}; B = {rows}, median ms")
    print(f"{'loss':8} {'C':>8} {'eager':>9} {'compiled':>9}")
    for name, fn in (("arc", arc), ("arcface", arcface)):
        compiled = torch.compile(fn)
        for classes in (1000, 10000, 100000, 1000000):
            cos = (torch.rand(rows, classes, device="cuda") * 2 - 1).requires_grad_()
            target = torch.randint(classes, (rows,), device="cuda")
            eager_ms = time_ms(fn, cos, target)
            compiled_ms = time_ms(compiled, cos, target)
            results.append({"loss": name, "B": rows, "C": classes,
                             "eager_ms": eager_ms, "compiled_ms": compiled_ms})
            print(f"{name:8} {classes:8d} {eager_ms:9.3f} {compiled_ms:9.3f}", flush=True)
            if args.json:  # after every row: a run stopped by a time limit keeps what it measured
                with open(args.json, "w") as f:
                    json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(0),
                               "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
