"""The peer of angular-train in plain PyTorch (eager): the same CIFAR-style ResNet20, the
paper's angular loss written with ATen ops, SGD with momentum, data kept on the GPU. Prints
training images per second over whole epochs, for comparison with angular-train's.

    python3 bench/train_eager.py --data DIR [--epochs 2] [--device cuda] [--json FILE]
"""
import argparse
import gzip
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 2.0 ** -23


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet20(nn.Module):
    def __init__(self, cin=1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(cin, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        layers, width = [], 16
        for stage, out in enumerate((16, 32, 64)):
            for b in range(3):
                layers.append(Block(width, out, 2 if stage > 0 and b == 0 else 1))
                width = out
        self.stages = nn.Sequential(*layers)

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--train-limit", type=int, default=0)
    p.add_argument("--json")
    a = p.parse_args()
    dev = torch.device(a.device)
    torch.backends.cudnn.benchmark = True  # as angular-train does on a GPU
    x = torch.tensor(idx(f"{a.data}/train-images-idx3-ubyte.gz"), dtype=torch.float32).div_(255).unsqueeze(1)
    y = torch.tensor(idx(f"{a.data}/train-labels-idx1-ubyte.gz"), dtype=torch.long)
    if a.train_limit:
        x, y = x[: a.train_limit], y[: a.train_limit]
    x = ((x - x.mean()) / x.std()).to(dev)
    y = y.to(dev)
    torch.manual_seed(0)
    model = ResNet20().to(dev)
    w = nn.Parameter(torch.empty(10, 64, device=dev).uniform_(-1 / 8, 1 / 8))
    k = max(3.0, 2 / math.pi * math.log(99 * 9))
    opt = torch.optim.SGD(list(model.parameters()) + [w], lr=0.1, momentum=0.9, weight_decay=5e-4)
    rates = []
    for epoch in range(a.epochs):
        order = torch.randperm(len(y), device=dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for b in range(0, len(y), a.batch_size):
            i = order[b: b + a.batch_size]
            cos = F.normalize(model(x[i])) @ F.normalize(w).t()
            loss = F.cross_entropy(k * (math.pi / 2 - torch.acos(cos.clamp(-1 + EPS, 1 - EPS))), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rates.append(len(y) / (time.perf_counter() - start))
        print(f"epoch {epoch + 1}: {rates[-1]:.0f} images/s, loss {loss.item():.4f}", flush=True)
    result = {"torch": torch.__version__, "device": str(dev), "images_per_second": max(rates),
              "images_per_second_per_epoch": rates}
    print(json.dumps(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
