"""Shared fixtures: a tiny learnable task and a simulated kill right after an epoch's commit."""

import pytest
import torch

from noisyrnn.data.task import Split, Task


def make_tiny_task(n=64, T=10, seed=0) -> Task:
    """Sign of the mean of a noisy sequence: learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)

    def make(k):
        y = torch.randint(0, 2, (k,), generator=g)
        return Split(torch.randn(k, T, 1, generator=g) + (2.0 * y - 1.0).view(-1, 1, 1), y)

    return Task("tiny", make(n), make(n), make(n), num_classes=2)


@pytest.fixture
def tiny_task():
    return make_tiny_task()


class Killed(BaseException):
    """Stands for SIGKILL: raised right after a training state is committed (nothing after it runs)."""


@pytest.fixture
def kill_after_epoch(monkeypatch):
    """kill_after_epoch(k): the next training run dies right after committing epoch k's state."""
    from noisyrnn.training import ensemble_trainer

    real = ensemble_trainer.save_training_state

    def arm(epoch: int):
        def save_then_die(folder, model, optimizer, scheduler, generators, info, best_state=None):
            real(folder, model, optimizer, scheduler, generators, info, best_state)
            if info["epoch"] == epoch:
                raise Killed(f"killed after epoch {epoch}")

        monkeypatch.setattr(ensemble_trainer, "save_training_state", save_then_die)

    yield arm
    monkeypatch.setattr(ensemble_trainer, "save_training_state", real)
