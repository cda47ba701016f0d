"""The evaluation of embeddings, without an [N, N] matrix: retrieval (precision@1, R-precision,
MAP@R, mean reciprocal rank, recall@k) and verification (TAR@FAR, EER, AUC, k-fold accuracy)."""

from dataclasses import dataclass, field

import torch

__all__ = ["RetrievalMetrics", "VerificationMetrics", "retrieval_metrics", "verification_metrics", "all_pairs",
           "pair_similarities"]


@dataclass
class RetrievalMetrics:
    precision_at_1: float
    r_precision: float
    map_at_r: float
    mean_reciprocal_rank: float
    recall: dict = field(default_factory=dict)  # k -> recall@k


@dataclass
class VerificationMetrics:
    genuine_pairs: int
    impostor_pairs: int
    thresholds: torch.Tensor  # the ROC: descending thresholds (the first +inf), float64
    tpr: torch.Tensor
    fpr: torch.Tensor
    tar: dict  # FAR -> TAR
    eer: float
    auc: float
    accuracy: float  # mean over the folds, each fold's threshold chosen on the others
    accuracy_std: float


def retrieval_metrics(embeddings, labels, references=None, reference_labels=None, *, recall_at=(1, 2, 4, 8),
                      chunk_size=0):
    """Queries ``embeddings`` [Q, D] with ``labels`` [Q] against ``references`` [N, D] with their
    labels; without references, each embedding against all the others (leave-one-out)."""
    p1, rp, map_r, mrr, ks, recall = torch.ops.angular.retrieval_metrics(
        embeddings, labels, references, reference_labels, list(recall_at), int(chunk_size))
    return RetrievalMetrics(p1, rp, map_r, mrr, dict(zip(ks, recall)))


def verification_metrics(scores, same, *, far=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1), folds=10):
    """Verification from pair ``scores`` [P] and ``same`` [P] (bool: a genuine pair); or, given
    embeddings [N, D] and labels [N], over all their pairs (``all_pairs``)."""
    if scores.dim() == 2:
        scores, same = all_pairs(scores, same)
    genuine, impostor, thresholds, tpr, fpr, fars, tars, eer, auc, accuracy, accuracy_std = (
        torch.ops.angular.verification_metrics(scores, same, [float(f) for f in far], int(folds)))
    return VerificationMetrics(genuine, impostor, thresholds, tpr, fpr, dict(zip(fars, tars)), eer, auc, accuracy,
                               accuracy_std)


def all_pairs(embeddings, labels):
    """(scores, same) of every pair i < j: cosine similarity and whether the labels agree."""
    return torch.ops.angular.all_pairs(embeddings, labels)


def pair_similarities(a, b):
    """Cosine similarity of each row pair (a_i, b_i), [P]."""
    return torch.ops.angular.pair_similarities(a, b)
