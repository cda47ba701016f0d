"""angular's table of losses, as C++ holds it (torch.ops.angular.loss_table): each margin's names,
its logits in one line, what it reads per row, its running statistics and each setting with its
type, C++ default and meaning. angular.functional and the modules are built from it
(_codegen.py): a margin added in C++ appears in Python with no Python edit."""

import json
import keyword
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

__all__ = ["Setting", "Statistic", "Margin", "margins", "center_settings", "center_module_settings", "cross_entropy",
           "setting_tensor", "python_name", "find", "names"]


def python_name(name: str) -> str:
    """A C++ setting's name as a Python argument: SphereFace's and the center loss's ``lambda``
    is ``lambda_``."""
    return name + "_" if keyword.iskeyword(name) else name


@dataclass(frozen=True)
class Setting:
    name: str  # the C++ name
    type: str  # "float", "float?" (None: automatic), "bool", "int", "str", "Tensor?"
    default: object
    doc: str

    @property
    def python(self) -> str:
        return python_name(self.name)

    def value(self, number: float):
        """A number of a settings tensor as this setting's Python value."""
        if self.type == "float?" and math.isnan(number):
            return None
        if self.type == "bool":
            return number != 0
        if self.type == "int":
            return int(number)
        return number


@dataclass(frozen=True)
class Statistic:
    name: str
    start: float
    doc: str


@dataclass(frozen=True)
class Margin:
    name: str  # the operators' name: "arcface", "subcenter-arcface", ...
    module: str  # the module's class: "ArcFaceLoss"
    function: str  # the loss over cosines: "arcface_loss" (over features: "linear_" + it)
    summary: str
    normalized: bool  # False: logits of the raw products (softmax_loss, over features only)
    row_input: str  # "none", "norms", "norm_statistics", "curriculum"
    statistics: Tuple[Statistic, ...]
    settings: Tuple[Setting, ...]
    module_settings: Tuple[Setting, ...]  # the modules' own (the statistics' momentum)

    @property
    def linear_function(self) -> str:
        return self.function if not self.normalized else "linear_" + self.function

    @property
    def reads_norms(self) -> bool:
        """Whether its loss over cosines takes the feature norms."""
        return self.row_input in ("norms", "norm_statistics")


def _settings(entries) -> Tuple[Setting, ...]:
    return tuple(Setting(e["name"], e["type"], e["default"], e["doc"]) for e in entries)


def _load():
    table = json.loads(torch.ops.angular.loss_table())
    found = tuple(
        Margin(m["name"], m["module"], m["function"], m["summary"], m["normalized"], m["row_input"],
               tuple(Statistic(s["name"], s["start"], s["doc"]) for s in m["statistics"]),
               _settings(m["settings"]), _settings(m["module_settings"]))
        for m in table["margins"])
    center = table["center"]
    return found, _settings(center["settings"]), _settings(center["module_settings"]), _settings(table["cross_entropy"])


# The margins; the center loss's settings and its module's; the cross-entropy's arguments.
margins, center_settings, center_module_settings, cross_entropy = _load()


def setting_tensor(values) -> torch.Tensor:
    """The settings tensor the operators take: float64 on the CPU, in the table's order; None (an
    automatic value) is NaN. Tensors (0-dim) are taken as they are, for values that change under
    torch.compile without recompiling."""
    if any(isinstance(v, torch.Tensor) for v in values):
        return torch.stack([torch.as_tensor(math.nan if v is None else v, dtype=torch.float64, device="cpu").reshape(())
                            for v in values])
    return torch.tensor([math.nan if v is None else float(v) for v in values], dtype=torch.float64)


def find(name: str) -> Optional[Margin]:
    return next((m for m in margins if m.name == name), None)


def names() -> List[str]:
    return [m.name for m in margins]
