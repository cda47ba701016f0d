"""The losses in plain PyTorch, float64: the tests' independent oracle (no call into angular)."""

import math

import torch
import torch.nn.functional as F

EPS = 2.0 ** -23  # the arccos clamp: cosines within [-1 + EPS, 1 - EPS]


def angle(c):
    return torch.acos(c.clamp(-1 + EPS, 1 - EPS))


def default_arc_k(classes):
    return 3.0 if classes <= 1 else max(3.0, 2.0 / math.pi * math.log(99.0 * (classes - 1)))


def _with_target(cos, target, ignore_index, f):
    """cos with each kept row's label column replaced by f(label cosine)."""
    kept = target != ignore_index
    labels = torch.where(kept, target, 0).unsqueeze(1)
    c = cos.gather(1, labels)
    return cos.scatter(1, labels, torch.where(kept.unsqueeze(1), f(c), c))


def logits(margin, cos, target, settings, ignore_index=-100, norms=None):
    s = settings.get("scale", 1.0)
    if margin == "arc":
        k = settings.get("k") or default_arc_k(cos.shape[1])
        return k * (math.pi / 2 - angle(cos))
    if margin == "arcface":
        m = settings.get("margin", 0.5)

        def target_logit(c):
            value = torch.where(angle(c) + m <= math.pi, torch.cos(angle(c) + m), c - m * math.sin(m))
            return value if settings.get("exact_gradient", True) else c + (value - c).detach()
        return s * _with_target(cos, target, ignore_index, target_logit)
    if margin == "cosface":
        return s * _with_target(cos, target, ignore_index, lambda c: c - settings.get("margin", 0.35))
    if margin == "normface":
        return s * cos
    if margin == "combined":
        m1, m2, m3 = settings.get("m1", 1.0), settings.get("m2", 0.5), settings.get("m3", 0.0)
        offset = math.cos((math.pi - m2) / m1) + math.cos(m2) + m2 * math.sin(m2) + m3

        def target_logit(c):
            a = angle(c) * m1 + m2
            return torch.where(a <= math.pi, torch.cos(a) - m3, c - offset)
        return s * _with_target(cos, target, ignore_index, target_logit)
    if margin == "sphereface":
        m, lam = int(settings.get("margin", 4.0)), settings.get("lambda", 0.0)

        def target_logit(c):
            theta = angle(c)
            k = torch.floor(theta * m / math.pi).clamp(max=m - 1).detach()
            psi = (1 - 2 * torch.remainder(k, 2)) * torch.cos(m * theta) - 2 * k
            return (lam * c + psi) / (1 + lam)
        return norms.unsqueeze(1) * _with_target(cos, target, ignore_index, target_logit)
    raise ValueError(margin)


def loss(margin, cos, target, settings=None, *, reduction="mean", ignore_index=-100, label_smoothing=0.0,
         weight=None, norms=None, sub_centers=1):
    settings = settings or {}
    if sub_centers > 1:
        cos = cos.view(cos.shape[0], -1, sub_centers).max(2).values
    z = logits(margin, cos, target, settings, ignore_index, norms)
    return F.cross_entropy(z, target, weight=weight, reduction=reduction, ignore_index=ignore_index,
                           label_smoothing=label_smoothing)


def cosines(features, weight):
    return F.normalize(features, dim=1, eps=1e-12) @ F.normalize(weight, dim=1, eps=1e-12).t()


def linear_loss(margin, features, vectors, target, settings=None, **kwargs):
    if margin == "soft":
        return F.cross_entropy(features @ vectors.t(), target, weight=kwargs.get("weight"),
                               reduction=kwargs.get("reduction", "mean"), ignore_index=kwargs.get("ignore_index", -100),
                               label_smoothing=kwargs.get("label_smoothing", 0.0))
    if margin == "sphereface":
        kwargs["norms"] = features.norm(dim=1).clamp_min(1e-12)
    return loss(margin, cosines(features, vectors), target, settings, **kwargs)
