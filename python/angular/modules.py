"""angular's losses as modules: the class vectors ``weight`` [C·K, D] (a Parameter, initialised like
``torch.nn.Linear``'s), the running statistics of the margins that keep them (buffers, moved in
training mode), ``forward(features, target)`` on the features-level path (no [B, C] tensor),
``logits(features)`` for prediction and ``cosines(features)``. One module per margin of the C++
table (angular/_codegen.py writes them), and CenterLoss.

Each setting is an attribute of its own name (``head.margin``, ``head.scale``, ...), held in a
float64 CPU tensor that the operators read at every call: a value set between steps takes
effect at the next step, and a compiled step does not recompile for it."""

import math
from typing import List, Optional

import torch
from torch import Tensor, nn

from . import _codegen, _table
from .functional import _setting_tensor, reduction_code

__all__ = [*(m.module for m in _table.margins), "CenterLoss"]


def class_vectors(rows: int, embedding_dim: int) -> nn.Parameter:
    """A Parameter [rows, D] initialised like torch.nn.Linear's weight: U(−1/√D, 1/√D)."""
    bound = 1.0 / math.sqrt(embedding_dim)
    return nn.Parameter(torch.empty(rows, embedding_dim).uniform_(-bound, bound))


def check_momentum(momentum) -> None:
    if isinstance(momentum, bool) or not (isinstance(momentum, (int, float)) and 0 < momentum <= 1):
        raise ValueError(f"angular: momentum must be in (0, 1], got {momentum!r}")


def write_setting(values: Tensor, index: int, name: str, value, check) -> Tensor:
    """Writes `value` at `index` of the settings tensor `values`, in place, once check(new values)
    passed; returns the new values. Settings that shape the parameters (sub_centers, update) are
    read only."""
    if name in ("sub_centers", "update"):
        raise AttributeError(f"angular: {name} shapes the module's parameters: build a new module")
    new = values.clone()
    new[index] = math.nan if value is None else float(value)
    check(new)
    values[index] = new[index]
    return new


def setting_property(holder: str, index: int, setting: _table.Setting, check) -> property:
    """The attribute of a setting held at `index` of the module's tensor `holder`: read, it is the
    value; set, the value is checked (check(module, values)) and written (write_setting)."""

    def get(module):
        return setting.value(getattr(module, holder)[index].item())

    def set(module, value):
        new = write_setting(getattr(module, holder), index, setting.name, value, lambda v: check(module, v))
        if holder == "_settings":
            module._numbers = new.tolist()

    return property(get, set, doc=f"{setting.doc} (default {_codegen.default(setting)})")


class _LossModule(nn.Module):
    """What every loss module has: the class vectors, the cross-entropy settings, cosines()."""

    def __init__(self, num_classes: int, embedding_dim: int, vectors_per_class: int, reduction: str,
                 ignore_index: int, label_smoothing: float, class_weight: Optional[Tensor], chunk_rows: int):
        super().__init__()
        for arg, value in (("num_classes", num_classes), ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"angular: {type(self).__name__}: {arg} must be an integer >= 1, got {value!r}")
        reduction_code(reduction)
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        self.reduction, self.ignore_index, self.label_smoothing, self.chunk_rows = (
            reduction, ignore_index, label_smoothing, chunk_rows)
        self.weight = class_vectors(num_classes * vectors_per_class, embedding_dim)
        self.register_buffer("class_weight", None if class_weight is None else torch.as_tensor(class_weight).clone())

    def _cross_entropy_args(self):
        return (self.class_weight, reduction_code(self.reduction), int(self.ignore_index), float(self.label_smoothing),
                int(self.chunk_rows))

    def _features_and_weight(self, features: Tensor):
        """Features and class vectors in one dtype, the wider of the two."""
        dtype = torch.promote_types(features.dtype, self.weight.dtype)
        return features.to(dtype), self.weight.to(dtype)

    def cosines(self, features: Tensor) -> Tensor:
        """Cosines [B, C·K] between features [B, D] and the class vectors."""
        return torch.ops.angular.cosine_matrix(features, self.weight)


class _MarginLoss(_LossModule):
    """A margin of the C++ table, named by the subclass's ``margin_name``; its settings live in
    ``_settings`` (the operators' float64 tensor) and ``_module_settings`` (the momentum)."""

    margin_name: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._margin = _table.find(cls.margin_name)
        for i, s in enumerate(cls._margin.settings):
            setattr(cls, s.python, setting_property("_settings", i, s, cls._check_settings))
        for i, s in enumerate(cls._margin.module_settings):
            setattr(cls, s.python, setting_property("_module_settings", i, s, cls._check_module_settings))

    def __init__(self, num_classes: int, embedding_dim: int, settings: List, module_settings: List, *,
                 reduction: str, ignore_index: int, label_smoothing: float, class_weight: Optional[Tensor],
                 chunk_rows: int):
        names = [s.name for s in self._margin.settings]
        sub_centers = settings[names.index("sub_centers")] if "sub_centers" in names else 1
        values = _setting_tensor(settings)
        torch.ops.angular.check_settings(self.margin_name, values, num_classes)
        super().__init__(num_classes, embedding_dim, int(sub_centers), reduction, ignore_index, label_smoothing,
                         class_weight, chunk_rows)
        self._settings = values  # not a buffer: it stays a float64 CPU tensor whatever .to() does
        self._numbers = values.tolist()  # the same as numbers, for logits()
        self._module_settings = _setting_tensor(module_settings)
        self._check_module_settings(self._module_settings)
        for s in self._margin.statistics:
            self.register_buffer(s.name, torch.full((1,), float(s.start)))

    def _check_settings(self, values: Tensor) -> None:
        torch.ops.angular.check_settings(self.margin_name, values, self.num_classes)

    def _check_module_settings(self, values: Tensor) -> None:
        for s, v in zip(self._margin.module_settings, values.tolist()):
            if s.name == "momentum":
                check_momentum(v)

    @property
    def settings(self) -> dict:
        """The margin's settings by name, as they are now."""
        return {s.python: getattr(self, s.python) for s in self._margin.settings + self._margin.module_settings}

    def forward(self, features: Tensor, target: Tensor) -> Tensor:
        """The loss of features [B, D] with labels [B] (int64). In training mode the running
        statistics first take this batch's rows not ignored (once the inputs passed their checks)."""
        x, w = self._features_and_weight(features)
        statistics = [getattr(self, s.name) for s in self._margin.statistics]
        if statistics and self.training:
            moved = torch.ops.angular.margin_statistics_step(
                x, w, target, self.margin_name, self._settings, statistics, *self._cross_entropy_args(),
                self._module_settings)
            for buffer, value in zip(statistics, moved):
                buffer.copy_(value)
        class_weight, reduction, ignore_index, smoothing, chunk_rows = self._cross_entropy_args()
        return torch.ops.angular.linear_margin_cross_entropy(x, w, target, self.margin_name, self._settings, statistics,
                                                             class_weight, reduction, ignore_index, smoothing,
                                                             chunk_rows)

    def logits(self, features: Tensor) -> Tensor:
        """Logits without margin [B, C] for prediction: argmax is the class."""
        return torch.ops.angular.margin_logits(features, self.weight, self.margin_name, self._numbers)

    def extra_repr(self) -> str:
        settings = "".join(f", {k}={v}" for k, v in self.settings.items())
        return f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}{settings}"


exec(compile(_codegen.modules_source(), "<angular.modules, written from the C++ table>", "exec"), globals())

_CENTER = {s.name: s for s in _table.center_module_settings}


class CenterLoss(_LossModule):
    """The modified softmax plus λ·½‖x − c_y‖² towards class centers [C, D] (from zero): a buffer
    moved by Wen et al.'s alpha rule in training mode, or a Parameter for the optimizer
    (update="sgd"). ``lambda_`` and ``alpha`` are attributes that take effect at the next step.

    Args:
        num_classes: C, the classes
        embedding_dim: D, the features' size
        lambda_: {lambda}
        alpha: {alpha}
        update: {update}
        the cross-entropy's arguments and chunk_rows: as the margin modules'
    """

    lambda_ = setting_property("_settings", 0, _CENTER["lambda"], lambda m, v: m._check(v))
    alpha = setting_property("_settings", 1, _CENTER["alpha"], lambda m, v: m._check(v))

    def __init__(self, num_classes: int, embedding_dim: int, lambda_: float = _CENTER["lambda"].default,
                 alpha: float = _CENTER["alpha"].default, update: str = _CENTER["update"].default, *,
                 reduction: str = "mean", ignore_index: int = -100, label_smoothing: float = 0.0,
                 class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None:
        super().__init__(num_classes, embedding_dim, 1, reduction, ignore_index, label_smoothing, class_weight,
                         chunk_rows)
        if update not in ("alpha", "sgd"):
            raise ValueError(f"angular: update must be 'alpha' or 'sgd', got {update!r}")
        self._settings = _setting_tensor([lambda_, alpha])  # [lambda, alpha], read at every call
        self._check(self._settings)
        self.update = update
        centers = torch.zeros(num_classes, embedding_dim)
        if update == "sgd":
            self.centers = nn.Parameter(centers)
        else:
            self.register_buffer("centers", centers)

    @staticmethod
    def _check(values: Tensor) -> None:
        torch.ops.angular.check_settings("center", values[:1], 1)
        alpha = values[1].item()
        if not 0 < alpha <= 1:
            raise ValueError(f"angular: alpha must be in (0, 1], got {alpha!r}")

    def forward(self, features: Tensor, target: Tensor) -> Tensor:
        """The loss; in training mode with the alpha rule the centers then move towards this batch."""
        x, w = self._features_and_weight(features)
        class_weight, reduction, ignore_index, smoothing, chunk_rows = self._cross_entropy_args()
        loss = torch.ops.angular.center_loss(x, w, self.centers, target, self._settings[:1], class_weight, reduction,
                                             ignore_index, smoothing, chunk_rows)
        if self.training and self.update == "alpha":
            # Under torch.compile the centers move in a copy that then replaces the buffer: AOT
            # autograd may recompute the loss's backward from a graph input, which must not have
            # moved (it would, in place: the compiled gradient then differs from eager's).
            centers = self.centers.clone() if torch.compiler.is_compiling() else self.centers
            torch.ops.angular.update_centers_(centers, features.detach(), target, self._settings[1], ignore_index)
            self.centers = centers
        return loss

    def logits(self, features: Tensor) -> Tensor:
        """Logits x Wᵀ [B, C] for prediction."""
        return torch.ops.angular.margin_logits(features, self.weight, "soft", [])

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, lambda={self.lambda_}, "
                f"alpha={self.alpha}, update={self.update}")


CenterLoss.__doc__ = CenterLoss.__doc__.format(**{k: f"{s.doc} (default {_codegen.default(s)})"
                                                  for k, s in _CENTER.items()})
