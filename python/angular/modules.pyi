# Type stubs of angular.modules: the hand-written part, then the margin modules written from the
# C++ table (modules.py writes them at run time from the same table).
from typing import Optional

from torch import Tensor, nn

def class_vectors(rows: int, embedding_dim: int) -> nn.Parameter: ...
def check_momentum(momentum: float) -> None: ...

class _LossModule(nn.Module):
    num_classes: int
    embedding_dim: int
    reduction: str
    ignore_index: int
    label_smoothing: float
    chunk_rows: int
    weight: nn.Parameter
    class_weight: Optional[Tensor]
    def cosines(self, features: Tensor) -> Tensor: ...

class _MarginLoss(_LossModule):
    margin_name: str
    @property
    def settings(self) -> dict: ...
    def forward(self, features: Tensor, target: Tensor) -> Tensor: ...
    def logits(self, features: Tensor) -> Tensor: ...

class CenterLoss(_LossModule):
    lambda_: float
    alpha: float
    update: str
    centers: Tensor
    def __init__(self, num_classes: int, embedding_dim: int, lambda_: float = ..., alpha: float = ...,
                 update: str = "alpha", *, reduction: str = "mean", ignore_index: int = -100,
                 label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None: ...
    def forward(self, features: Tensor, target: Tensor) -> Tensor: ...
    def logits(self, features: Tensor) -> Tensor: ...

# ---- written by `python -m angular._codegen --stubs`, from the C++ table: do not edit below ----

class SoftmaxLoss(_MarginLoss):
    def __init__(self, num_classes: int, embedding_dim: int, *, reduction: str = 'mean', ignore_index: int = -100, label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None: ...

class ArcLoss(_MarginLoss):
    k: Optional[float]
    def __init__(self, num_classes: int, embedding_dim: int, k: Optional[float] = None, *, reduction: str = 'mean', ignore_index: int = -100, label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None: ...

class ArcFaceLoss(_MarginLoss):
    scale: float
    margin: float
    exact_gradient: bool
    continuation: bool
    def __init__(self, num_classes: int, embedding_dim: int, scale: float = 64.0, margin: float = 0.5, exact_gradient: bool = True, continuation: bool = True, *, reduction: str = 'mean', ignore_index: int = -100, label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None: ...

class CosFaceLoss(_MarginLoss):
    scale: float
    margin: float
    def __init__(self, num_classes: int, embedding_dim: int, scale: float = 64.0, margin: float = 0.35, *, reduction: str = 'mean', ignore_index: int = -100, label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None: ...

class NormFaceLoss(_MarginLoss):
    scale: float
    def __init__(self, num_classes: int, embedding_dim: int, scale: float = 16.0, *, reduction: str = 'mean', ignore_index: int = -100, label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None: ...

class CombinedMarginLoss(_MarginLoss):
    scale: float
    m1: float
    m2: float
    m3: float
    def __init__(self, num_classes: int, embedding_dim: int, scale: float = 64.0, m1: float = 1.0, m2: float = 0.5, m3: float = 0.0, *, reduction: str = 'mean', ignore_index: int = -100, label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None: ...

class SphereFaceLoss(_MarginLoss):
    margin: float
    lambda_: float
    def __init__(self, num_classes: int, embedding_dim: int, margin: float = 4.0, lambda_: float = 0.0, *, reduction: str = 'mean', ignore_index: int = -100, label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None: ...

class SubCenterArcFaceLoss(_MarginLoss):
    sub_centers: int
    scale: float
    margin: float
    def __init__(self, num_classes: int, embedding_dim: int, sub_centers: int = 3, scale: float = 64.0, margin: float = 0.5, *, reduction: str = 'mean', ignore_index: int = -100, label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None: ...

class AdaFaceLoss(_MarginLoss):
    scale: float
    margin: float
    h: float
    momentum: float
    norm_mean: Tensor
    norm_std: Tensor
    def __init__(self, num_classes: int, embedding_dim: int, scale: float = 64.0, margin: float = 0.4, h: float = 0.333, momentum: float = 0.01, *, reduction: str = 'mean', ignore_index: int = -100, label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None: ...

class CurricularFaceLoss(_MarginLoss):
    scale: float
    margin: float
    momentum: float
    t: Tensor
    def __init__(self, num_classes: int, embedding_dim: int, scale: float = 64.0, margin: float = 0.5, momentum: float = 0.01, *, reduction: str = 'mean', ignore_index: int = -100, label_smoothing: float = 0.0, class_weight: Optional[Tensor] = None, chunk_rows: int = 0) -> None: ...
