"""Datasets: loaders with checksums and a download path, and the paper's task splits."""

from functools import partial

from .ecg import load_ecg5000
from .mnist import load_mnist
from .task import Split, Task
from .ucr import UCRDataset, check_data_dir, load_ucr
from .user import load_data_task, load_ucr_task, read_labelled_split, task_from_arrays, task_from_sequences

TASK_LOADERS = {
    "ecg": load_ecg5000,
    "mnist": partial(load_mnist, permuted=False, rows=False),
    "pmnist": partial(load_mnist, permuted=True, rows=False),
    "mnist_rows": partial(load_mnist, permuted=False, rows=True),
    "pmnist_rows": partial(load_mnist, permuted=True, rows=True),
}


UCR_PREFIX = "ucr:"
FILE_PREFIX = "file:"


def is_user_task(name: str) -> bool:
    """Whether a task name is user data (``ucr:NAME``, ``file:PATH``), not one of the paper's tasks."""
    return name.startswith((UCR_PREFIX, FILE_PREFIX))


TASK_OPTIONS = ("normalize", "val_fraction", "split_seed", "fold", "folds", "regression")


def load_task(name: str, data_dir=None, download: bool = False, **options) -> Task:
    """Load a task by name: ``ecg``, ``mnist``/``pmnist`` (T=784 pixels), ``mnist_rows``/``pmnist_rows``
    (T=28), ``ucr:NAME`` (any UCR/UEA dataset) or ``file:PATH`` (a data file; see
    :func:`load_data_task`). ``options`` (user data only, :data:`TASK_OPTIONS`): ``normalize``,
    ``val_fraction`` (0: no validation split, every labelled sequence trains and only the last
    epoch can be kept), ``split_seed`` (the seed of the stratified validation split), ``fold`` and
    ``folds`` (validation is fold k of a stratified K-fold split of the training part, seeded by
    ``split_seed``), ``regression`` (real-valued targets; None: as the file declares)."""
    from ..errors import ConfigError, check_choice

    check_data_dir(data_dir)
    unknown = set(options) - set(TASK_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown task option(s) {', '.join(sorted(unknown))}; known: {', '.join(TASK_OPTIONS)}")
    options = dict(options)
    if "split_seed" in options:
        options["seed"] = int(options.pop("split_seed"))
    if ("fold" in options) != ("folds" in options):
        raise ConfigError("task options fold and folds go together (validation = fold k of K)")
    if "fold" in options:
        options["fold"] = (options.pop("fold"), options.pop("folds"))
    if name.startswith(UCR_PREFIX):
        if not name[len(UCR_PREFIX):]:
            raise ConfigError("--task ucr:NAME needs a dataset name, e.g. ucr:GunPoint")
        return load_ucr_task(name[len(UCR_PREFIX):], data_dir=data_dir, download=download, **options)
    if name.startswith(FILE_PREFIX):
        return load_data_task(name[len(FILE_PREFIX):], **options)
    check_choice(name, set(TASK_LOADERS) | {"ucr:NAME", "file:PATH"}, "task")
    if options:
        raise ConfigError(f"options {', '.join(sorted(options))} apply to user data only, not to the paper task {name!r}")
    return TASK_LOADERS[name](data_dir=data_dir, download=download)


__all__ = ["TASK_OPTIONS", "is_user_task", "Split", "Task", "UCRDataset", "load_ucr", "load_ecg5000", "load_mnist", "load_task", "TASK_LOADERS",
           "task_from_arrays", "task_from_sequences", "load_data_task", "load_ucr_task", "read_labelled_split"]
