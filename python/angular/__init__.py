"""angular: margin losses as fused PyTorch operators (torch.ops.angular)."""

from . import _C  # noqa: F401  (registers the operators)
from . import _fake  # noqa: F401  (their shapes, for torch.compile)
from . import functional
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules

__all__ = ["functional", *_modules]
