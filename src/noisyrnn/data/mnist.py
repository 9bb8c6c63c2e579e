"""MNIST in the IDX format, as pixel sequences: ordered, permuted, or row by row.

Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte`` (optionally ``.gz``), looked for in ``data_dir``, then
``$NOISYRNN_DATA_DIR`` (each also in a subfolder ``mnist``), then the download cache;
``download=True`` fetches them. The sha256 of every *uncompressed* file is checked against
the official values below on every load.

As in the authors' research code: pixels scaled to [0, 1]; 2000 training images held out
for validation with ``numpy.random.RandomState(1234).permutation(60000)`` (train = [:58000],
validation = [58000:]); the permuted task uses one fixed permutation,
``torch.manual_seed(12008); torch.randperm(784)``. (That code feeds pMNIST pixels unscaled,
in [0, 255]; here they are scaled to [0, 1] like ordered MNIST.)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .files import DATA_DIR_ENV, cache_dir, download as download_file, find_file, read_bytes, verify_sha256
from .task import Split, Task

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SHA256 = {  # of the uncompressed official files
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/{name}.gz"
PERMUTATION_SEED = 12008
SPLIT_SEED = 1234
N_VAL = 2000


def parse_idx(data: bytes, what: str) -> np.ndarray:
    """An IDX file (uint8 payload) as a numpy array of its declared shape."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{what} is not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"{what}: only unsigned-byte IDX files are supported (type code {data[2]:#x})")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise DataError(f"{what}: header declares shape {dims} ({expected} bytes) but holds {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _candidate_dirs(data_dir):
    roots = [Path(p) for p in (data_dir, os.environ.get(DATA_DIR_ENV)) if p]
    return [d for r in roots for d in (r, r / "mnist", r / "MNIST")] + [cache_dir() / "mnist"]


def locate(data_dir=None) -> Path | None:
    for d in _candidate_dirs(data_dir):
        if all(find_file(d, name) for name in FILES.values()):
            return d
    return None


def download_mnist() -> Path:
    """Fetch the four files into the cache; each is verified after decompression."""
    target = cache_dir() / "mnist"
    for name in FILES.values():
        path = download_file(MIRROR.format(name=name), target / f"{name}.gz")
        verify_sha256(read_bytes(path), SHA256[name], str(path))
    return target


def load_mnist_arrays(data_dir=None, download: bool = False) -> dict[str, np.ndarray]:
    folder = locate(data_dir)
    if folder is None:
        if not download:
            searched = ", ".join(str(d) for d in _candidate_dirs(data_dir))
            raise DataError(f"MNIST not found (looked in: {searched}); pass --data-dir, set {DATA_DIR_ENV}, "
                            "or allow downloading (--download)")
        folder = download_mnist()
    arrays = {}
    for key, name in FILES.items():
        path = find_file(folder, name)
        data = read_bytes(path)
        verify_sha256(data, SHA256[name], str(path))
        arrays[key] = parse_idx(data, str(path))
    return arrays


def permutation() -> torch.Tensor:
    """The research code's fixed pixel permutation for pMNIST."""
    gen = torch.Generator().manual_seed(PERMUTATION_SEED)
    return torch.randperm(784, generator=gen)


def load_mnist(data_dir=None, download: bool = False, permuted: bool = False, rows: bool = False,
               subset: int | None = None) -> Task:
    """MNIST as sequences: (n, 784, 1) pixels, or (n, 28, 28) rows with ``rows=True``;
    ``permuted`` applies the fixed permutation to the pixels first; ``subset`` keeps the
    first ``subset`` training images (after the split), for quick runs."""
    a = load_mnist_arrays(data_dir, download)
    order = np.random.RandomState(SPLIT_SEED).permutation(len(a["train_labels"]))
    train_idx, val_idx = order[:-N_VAL], order[-N_VAL:]
    if subset is not None:
        train_idx = train_idx[: int(subset)]
    perm = permutation() if permuted else None

    def split(images, labels):
        x = torch.from_numpy(images.reshape(len(images), 784).astype(np.float32) / 255.0)
        if perm is not None:
            x = x[:, perm]
        x = x.reshape(-1, 28, 28) if rows else x.unsqueeze(-1)
        return Split(x.contiguous(), torch.from_numpy(labels.astype(np.int64)))

    kind = ("permuted " if permuted else "ordered ") + ("rows (T=28)" if rows else "pixels (T=784)")
    name = ("pmnist" if permuted else "mnist") + ("_rows" if rows else "")
    return Task(
        name=name,
        train=split(a["train_images"][train_idx], a["train_labels"][train_idx]),
        val=split(a["train_images"][val_idx], a["train_labels"][val_idx]),
        test=split(a["test_images"], a["test_labels"]),
        num_classes=10,
        description=f"MNIST {kind}, {len(train_idx)}/{len(val_idx)}/10000 train/val/test",
        value_range=(0.0, 1.0),
    )
