"""Datasets: loaders with checksums and a download path, and the paper's task splits."""

from functools import partial

from .ecg import load_ecg5000
from .mnist import load_mnist
from .task import Split, Task
from .ucr import UCRDataset, load_ucr

TASK_LOADERS = {
    "ecg": load_ecg5000,
    "mnist": partial(load_mnist, permuted=False, rows=False),
    "pmnist": partial(load_mnist, permuted=True, rows=False),
    "mnist_rows": partial(load_mnist, permuted=False, rows=True),
    "pmnist_rows": partial(load_mnist, permuted=True, rows=True),
}


def load_task(name: str, data_dir=None, download: bool = False) -> Task:
    """Load a task by name: ``ecg``, ``mnist``/``pmnist`` (T=784 pixels), ``mnist_rows``/``pmnist_rows`` (T=28)."""
    from ..errors import check_choice

    check_choice(name, set(TASK_LOADERS), "task")
    return TASK_LOADERS[name](data_dir=data_dir, download=download)


__all__ = ["Split", "Task", "UCRDataset", "load_ucr", "load_ecg5000", "load_mnist", "load_task", "TASK_LOADERS"]
