"""Datasets: loaders with checksums and a download path, and the paper's task splits."""

from .ecg import load_ecg5000
from .task import Split, Task
from .ucr import UCRDataset, load_ucr

TASK_LOADERS = {"ecg": load_ecg5000}


def load_task(name: str, data_dir=None, download: bool = False) -> Task:
    """Load a task by name (``ecg``)."""
    from ..errors import check_choice

    check_choice(name, set(TASK_LOADERS), "task")
    return TASK_LOADERS[name](data_dir=data_dir, download=download)


__all__ = ["Split", "Task", "UCRDataset", "load_ucr", "load_ecg5000", "load_task", "TASK_LOADERS"]
