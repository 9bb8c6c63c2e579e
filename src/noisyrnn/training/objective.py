"""What training minimises and validation reports, by kind of task: classification (eq 14's
logits, cross-entropy, accuracy) or regression (real outputs, mean squared error on the
z-scored targets, RMSE and MAE)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Classification:
    """Cross-entropy of the logits (S, b, C) against labels (S, b); scored by accuracy."""

    regression = False
    train_metric = "train_accuracy"

    @staticmethod
    def loss(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member mean loss (S,)."""
        return F.cross_entropy(outputs.transpose(1, 2), y, reduction="none").mean(1)

    @staticmethod
    def score(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member number correct (S,)."""
        return (outputs.argmax(-1) == y).sum(1)

    @staticmethod
    def train_value(score_sum: float, n: int, width: int) -> float:
        return score_sum / n

    @staticmethod
    def validation(outputs_list, ys) -> list[dict]:
        S = outputs_list[0].shape[0]
        correct = torch.zeros(S, dtype=torch.float64)
        loss = torch.zeros(S, dtype=torch.float64)
        n = 0
        for outputs, y in zip(outputs_list, ys):
            loss += F.cross_entropy(outputs.transpose(1, 2), y.expand(S, -1), reduction="none").sum(1).double().cpu()
            correct += (outputs.argmax(-1) == y).sum(1).double().cpu()
            n += y.shape[-1]
        return [{"val_accuracy": float(correct[s]) / n, "val_loss": float(loss[s]) / n} for s in range(S)]


class Regression:
    """Mean squared error of the outputs (S, b, k) against z-scored targets (S, b, k); scored by
    RMSE (and MAE in validation), in z-scored units."""

    regression = True
    train_metric = "train_rmse"

    @staticmethod
    def loss(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (outputs - y).square().mean(dim=(1, 2))

    @staticmethod
    def score(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member sum of squared errors (S,)."""
        return (outputs - y).square().sum(dim=(1, 2))

    @staticmethod
    def train_value(score_sum: float, n: int, width: int) -> float:
        return math.sqrt(score_sum / (n * width))

    @staticmethod
    def validation(outputs_list, ys) -> list[dict]:
        S = outputs_list[0].shape[0]
        sq = torch.zeros(S, dtype=torch.float64)
        ab = torch.zeros(S, dtype=torch.float64)
        count = 0
        for outputs, y in zip(outputs_list, ys):
            diff = (outputs - y.expand(S, *y.shape)).double().cpu()
            sq += diff.square().sum(dim=(1, 2))
            ab += diff.abs().sum(dim=(1, 2))
            count += y.numel()
        return [{"val_loss": float(sq[s]) / count, "val_rmse": math.sqrt(float(sq[s]) / count),
                 "val_mae": float(ab[s]) / count} for s in range(S)]


def objective_of(task) -> Classification | Regression:
    return Regression() if getattr(task, "regression", False) else Classification()
