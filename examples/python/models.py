"""The backbones: angular-train's ResNet20, a torchvision model made for 1-channel images and
the embedding, and a BatchNorm over every rank's rows that works on the CPU."""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))


class ResNet20(nn.Module):
    """examples/train/resnet.hpp's: projection shortcuts, He initialisation."""

    def __init__(self, embedding_dim=0, widths=(16, 32, 64), blocks=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, c_in = [], widths[0]
        for s, width in enumerate(widths):
            for b in range(blocks):  # each stage after the first halves the resolution
                layers.append(BasicBlock(c_in, width, 2 if s > 0 and b == 0 else 1))
                c_in = width
        self.stages = nn.Sequential(*layers)
        self.embed = nn.Linear(widths[-1], embedding_dim) if embedding_dim else nn.Identity()
        self.feature_dim = embedding_dim or widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.embed(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1))


def torchvision_model(name, embedding_dim):
    """A torchvision model for 1-channel images whose output is the embedding; its feature width."""
    try:
        import torchvision
    except ImportError:
        raise SystemExit(f"train.py: error: --model torchvision:{name} needs torchvision (pip install torchvision, "
                         "the release made for this torch)") from None
    try:
        model = torchvision.models.get_model(name, weights=None)
    except ValueError:
        raise SystemExit(f"train.py: error: --model: torchvision has no model {name!r}; it has "
                         f"{', '.join(torchvision.models.list_models())}") from None
    modules = dict(model.named_modules())
    first = next(n for n, m in modules.items() if isinstance(m, nn.Conv2d))
    c = modules[first]
    model.set_submodule(first, nn.Conv2d(1, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation,
                                         bias=c.bias is not None, padding_mode=c.padding_mode))
    last = [n for n, m in modules.items() if isinstance(m, nn.Linear)][-1]  # the classifier
    width = modules[last].in_features
    model.set_submodule(last, nn.Linear(width, embedding_dim) if embedding_dim else nn.Identity())
    return model, embedding_dim or width


class SumOverRanks(torch.autograd.Function):
    """A sum over the ranks whose gradient is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are every rank's rows' (torch.nn.SyncBatchNorm needs
    a GPU): a step is then one process's with the whole batch, as in angular-train."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        c = x.shape[1]
        local = torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), x.new_full((1,), x.numel() / c)])
        sums = SumOverRanks.apply(local)
        n, mean = sums[-1], sums[:c] / sums[-1]
        var = sums[c:2 * c] / n - mean * mean
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
            self.num_batches_tracked += 1
        scale = self.weight * torch.rsqrt(var + self.eps)
        return x * scale.view(1, c, 1, 1) + (self.bias - mean * scale).view(1, c, 1, 1)
