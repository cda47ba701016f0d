"""angular: margin losses as fused PyTorch operators (torch.ops.angular).

Modules (ArcFaceLoss, ...), angular.functional, angular.evaluation, angular.metrics and, imported
on first use, angular.distributed (the class-sharded loss)."""

import importlib

import torch  # first: angular._C links against torch's libraries

from . import _C  # noqa: F401  (registers the operators)
from . import _fake  # noqa: F401  (their shapes, for torch.compile)
from . import evaluation, functional, metrics
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules

__version__ = _C.__version__

__all__ = ["functional", "evaluation", "metrics", "distributed", "release_gradient_buffers", "__version__", *_modules]


def release_gradient_buffers() -> int:
    """Gives back to the system the CPU memory of freed class-vector gradients that angular keeps
    for the next step's (64 MiB or more each, at most two; as CUDA's caching allocator keeps its
    blocks, and torch.cuda.empty_cache() gives them back). Returns the bytes given back."""
    return int(torch.ops.angular.release_gradient_buffers())


def __getattr__(name):
    # angular.distributed imports torch.distributed and torch's compiler: only when asked for.
    if name == "distributed":
        return importlib.import_module(".distributed", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
