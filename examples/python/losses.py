"""angular's loss modules by --loss's names, their settings from angular-train's defaults and
--set, and a rank's share of the class vectors."""

import inspect
import typing

import torch

import angular

# The loss modules by --loss's names: each margin's module knows its table name; and center.
HEADS = {**{cls.margin_name: cls for cls in (getattr(angular, n) for n in angular.modules.__all__)
            if getattr(cls, "margin_name", "")}, "center": angular.CenterLoss}


def setting_value(text, annotation):
    """`text` as a value of a setting annotated `annotation`: float, int, bool, str or Optional."""
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if text.lower() in ("none", "auto") and len(kinds) < len(typing.get_args(annotation)):
        return None
    if kinds[0] is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    try:
        return kinds[0](text)
    except ValueError:
        raise ValueError(f"expected a {kinds[0].__name__}, got {text!r}") from None


def head_settings(loss, assignments):
    """The loss module's keyword arguments: angular-train's defaults for 10 classes, then --set's."""
    params = {n: p.annotation for n, p in inspect.signature(HEADS[loss]).parameters.items()
              if n not in ("num_classes", "embedding_dim", "class_weight")}
    # The library's s = 64, m = 0.5 are made for thousands of classes (README, the trainers).
    defaults = {"scale": 16.0, **({"lambda_": 5.0} if loss == "sphereface" else {}),
                **({"margin": 0.2, "m2": 0.2} if loss not in ("adaface", "cosface", "sphereface") else {})}
    settings = {k: v for k, v in defaults.items() if k in params}
    for name, text in assignments:
        key = name if name in params else name + "_"  # lambda is lambda_ in Python
        if key not in params:
            raise ValueError(f"{loss} has no setting {name!r}; it has {', '.join(params)}")
        try:
            settings[key] = setting_value(text, params[key])
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    return settings


def make_shard(loss, settings, classes, dim, head):
    """This rank's share of `head`'s class vectors in a ShardedMarginLoss with its settings."""
    margin = set(angular.functional.margin_settings(loss))
    shard = angular.distributed.ShardedMarginLoss(classes, dim, loss,
                                                  {k: v for k, v in settings.items() if k in margin},
                                                  **{k: v for k, v in settings.items() if k not in margin})
    offset, count = shard.classes
    k = head.weight.shape[0] // classes  # sub-centers
    with torch.no_grad():  # the whole head's initial vectors: the same run as one process's
        shard.weight.copy_(head.weight[offset * k:(offset + count) * k])
    return shard
