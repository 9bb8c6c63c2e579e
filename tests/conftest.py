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


def state_epoch(folder) -> int:
    """The epoch the training state in ``folder`` holds; -1 while there is none yet."""
    from noisyrnn.errors import DataError
    from noisyrnn.training.checkpoint import read_training_state

    try:
        return read_training_state(folder)[0]["info"]["epoch"]
    except DataError:
        return -1


@pytest.fixture
def tiny_task():
    return make_tiny_task()


class Killed(BaseException):
    """Stands for SIGKILL: raised right after a training state is committed (nothing after it runs)."""


@pytest.fixture
def kill_after_epoch(monkeypatch):
    """kill_after_epoch(k): the next training run dies right after committing epoch k's state."""
    from noisyrnn.training import loop

    real = loop.save_training_state

    def arm(epoch: int):
        def save_then_die(folder, model, optimizer, scheduler, generators, info, best_state=None):
            real(folder, model, optimizer, scheduler, generators, info, best_state)
            if info["epoch"] == epoch:
                raise Killed(f"killed after epoch {epoch}")

        monkeypatch.setattr(loop, "save_training_state", save_then_die)

    return arm


def compiler_present() -> bool:
    import shutil

    return any(shutil.which(c) for c in ("c++", "g++", "clang++"))


@pytest.fixture
def engine():
    """The C++ engine's ops. Where a compiler exists the engine must have built (a failed build is
    a test failure, not a skip: otherwise the engine-vs-loop tests would compare the loop with
    itself); without a compiler the test is skipped."""
    from noisyrnn.engine.build import kernels

    ops = kernels()
    if ops is None:
        if compiler_present():
            pytest.fail("a C++ compiler is present but the engine did not build (see the RuntimeWarning)")
        pytest.skip("no C++ compiler: the library runs the ATen loops")
    return ops


def run_script(relative: str, *args: str, timeout: float = 600) -> str:
    """Run a repository script (a benchmark, an example) as its own process, as a user would;
    fail with its output; return its stdout."""
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / relative
    proc = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout
