"""angular: margin losses as fused PyTorch operators (torch.ops.angular)."""

from . import _C  # noqa: F401  (registers the operators)
from . import _fake  # noqa: F401  (their shapes, for torch.compile)
from . import distributed, evaluation, functional, metrics
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules

__all__ = ["functional", "evaluation", "metrics", "distributed", *_modules]
