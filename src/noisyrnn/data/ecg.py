"""The paper's ECG5000 task (section 7.2): normal (class 1) vs abnormal (classes 2-5).

Split (deterministic): the archive's 500 TRAIN series are the training set; the 4500
TEST series are shuffled with ``numpy.random.RandomState(split_seed).permutation(4500)``
(split_seed 0 by default), the first 500 forming the validation set and the other 4000
the test set. The archive's TEST file is sorted by class, hence the shuffle.
Labels: 0 = normal (archive class 1), 1 = abnormal (archive classes 2..5).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .task import Split, Task
from .ucr import load_ucr

N_TRAIN, N_VAL, N_TEST = 500, 500, 4000


def binary_labels(archive_labels: np.ndarray) -> np.ndarray:
    return (archive_labels != 1).astype(np.int64)


def load_ecg5000(data_dir=None, download: bool = False, split_seed: int = 0) -> Task:
    raw = load_ucr("ECG5000", data_dir=data_dir, download=download)
    if len(raw.train_y) != N_TRAIN or len(raw.test_y) != N_VAL + N_TEST:
        raise DataError(
            f"ECG5000 at {raw.source} has {len(raw.train_y)} train / {len(raw.test_y)} test rows, "
            f"expected {N_TRAIN} / {N_VAL + N_TEST}"
        )
    perm = np.random.RandomState(split_seed).permutation(len(raw.test_y))
    val_idx, test_idx = perm[:N_VAL], perm[N_VAL:]

    def split(values, labels):
        x = torch.from_numpy(np.ascontiguousarray(values)).unsqueeze(-1)
        return Split(x, torch.from_numpy(binary_labels(labels)))

    return Task(
        name="ecg",
        train=split(raw.train_x, raw.train_y),
        val=split(raw.test_x[val_idx], raw.test_y[val_idx]),
        test=split(raw.test_x[test_idx], raw.test_y[test_idx]),
        num_classes=2,
        description=f"ECG5000 normal vs abnormal, T=140, from {raw.source}",
    )
