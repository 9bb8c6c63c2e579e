"""Tasks from users' data: arrays, files (.npz, CSV, .ts) and UCR/UEA datasets by name.

Every path ends in :func:`task_from_sequences`: labels encoded to 0..C-1 (the user's labels
kept as ``task.classes``), a stratified, seeded validation split of the training part when
no validation part is given, and per-channel z-scoring fitted on the training split
(``normalize=True``, the default; statistics kept as ``task.normalization``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, InputError
from .normalize import ChannelNormalizer
from .readers import LabelledSequences, read_data_file
from .sequences import Sequences, as_sequences, encode_labels
from .task import Split, Task, _json_label

VAL_FRACTION = 0.2


def stratified_split(y: np.ndarray, fraction: float, seed: int, what: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): about ``fraction`` of every class to validation (at least one
    each), seeded; a class with a single example cannot be split and is an error."""
    if not 0 < fraction < 1:
        raise InputError(f"validation fraction must lie in (0, 1), got {fraction}")
    counts = np.bincount(y)
    lonely = np.flatnonzero(counts == 1)
    if lonely.size:
        raise InputError(f"{what}: class {int(lonely[0])} has only one example, so a stratified validation "
                         "split is impossible; give validation data or more examples")
    from sklearn.model_selection import train_test_split

    n_val = max(int(round(fraction * len(y))), int((counts > 0).sum()))
    if n_val > len(y) - int((counts > 0).sum()):
        raise InputError(f"{what}: {len(y)} examples in {int((counts > 0).sum())} classes are too few "
                         f"for a stratified validation split")
    train_idx, val_idx = train_test_split(np.arange(len(y)), test_size=n_val, stratify=y, random_state=seed)
    return np.sort(train_idx), np.sort(val_idx)


def check_fold(fold) -> tuple[int, int] | None:
    """``(k, K)``: validation is fold k (0 <= k < K, K >= 2) of a K-fold split; None: a hold-out."""
    if fold is None:
        return None
    try:
        k, count = (int(v) for v in fold)
    except (TypeError, ValueError):
        raise InputError(f"fold must be a pair (k, K), got {fold!r}") from None
    if count < 2 or not 0 <= k < count:
        raise InputError(f"fold (k, K) needs K >= 2 and 0 <= k < K, got ({k}, {count})")
    return k, count


def fold_split(y: np.ndarray, fold: tuple[int, int], seed: int, what: str = "y",
               stratified: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) of fold k of a seeded K-fold split (``fold = (k, K)``), stratified by
    class for labels: every sequence is validation in exactly one of the K folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    k, count = check_fold(fold)
    if len(y) < 2 * count:
        raise InputError(f"{what}: {len(y)} examples are too few for {count}-fold validation")
    if stratified:
        counts = np.bincount(y)
        least = int(counts[counts > 0].min())
        if least < count:
            raise InputError(f"{what}: the smallest class has {least} example(s), fewer than the {count} folds; "
                             "use fewer folds")
        splitter = StratifiedKFold(count, shuffle=True, random_state=seed)
    else:
        splitter = KFold(count, shuffle=True, random_state=seed)
    train_idx, val_idx = list(splitter.split(np.zeros(len(y)), y if stratified else None))[k]
    return np.sort(train_idx), np.sort(val_idx)


def _pad_to(seqs: Sequences, steps: int) -> Sequences:
    if seqs.x.shape[1] >= steps:
        return seqs
    x = np.zeros((len(seqs), steps, seqs.x.shape[2]), dtype=np.float32)
    x[:, : seqs.x.shape[1]] = seqs.x
    return Sequences(x, seqs.lengths)


def _split(seqs: Sequences, y: np.ndarray, idx=None, normalizer=None) -> Split:
    x, lengths = (seqs.x, seqs.lengths) if idx is None else (seqs.x[idx], seqs.lengths[idx])
    y = y if idx is None else y[idx]
    if normalizer is not None:
        x = normalizer.apply(x, lengths)
    equal = bool((lengths == x.shape[1]).all())
    return Split(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y),
                 None if equal else torch.from_numpy(lengths))


def _targets(labels, what: str) -> np.ndarray:
    """Real-valued regression targets (n, k) float64, or an InputError naming the fault."""
    try:
        y = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what}: regression targets must be numbers") from None
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise InputError(f"{what}: regression targets must be (n,) or (n, k), got shape {y.shape}")
    if not np.isfinite(y).all():
        row = int(np.argwhere(~np.isfinite(y))[0][0])
        raise InputError(f"{what}: target of sequence {row} is NaN or infinite")
    return y


def random_split(n: int, fraction: float, seed: int, what: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): a seeded random ``fraction`` (at least one) to validation, at least
    two left to train (regression targets have no classes to stratify by)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(fraction * n)))
    if n - n_val < 2:
        raise InputError(f"{what}: n_samples = {n} training sequences are too few for a validation split")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def split_indices(y: np.ndarray, val, fold, val_fraction: float, seed: int, what: str,
                  stratified: bool = True) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(train_idx, val_idx, held_out) of the training part: all of it when a validation part
    ``val`` is given (val_idx None); fold k of K (``fold = (k, K)``); every sequence for both when
    ``val_fraction = 0`` (held_out False: the refit on all labelled data after a search, where
    only the last epoch can be kept, ``train.select = "last"``); else a seeded hold-out of
    ``val_fraction``, stratified by class unless ``stratified`` is False."""
    if val is not None:
        return np.arange(len(y)), None, True
    if fold is not None:
        return (*fold_split(y, fold, seed, what, stratified=stratified), True)
    if val_fraction == 0:
        everything = np.arange(len(y))
        return everything, everything, False
    split = stratified_split(y, val_fraction, seed, what) if stratified else random_split(len(y), val_fraction, seed, what)
    return (*split, True)


def task_from_targets(train: LabelledSequences, test: LabelledSequences | None = None,
                      val: LabelledSequences | None = None, name: str = "data", normalize: bool = True,
                      val_fraction: float = VAL_FRACTION, seed: int = 0, description: str = "",
                      fold: tuple[int, int] | None = None) -> Task:
    """A regression :class:`Task`: real targets (n,) or (n, k) z-scored with the training
    split's mean and std (``task.target_normalization``), a seeded random validation split
    (or fold k of K, ``fold = (k, K)``), inputs normalised as for classification."""
    y = _targets(train.labels, f"{name}: training targets")
    parts = {"test": test, "val": val}
    steps = max([train.sequences.x.shape[1]] + [p.sequences.x.shape[1] for p in parts.values() if p is not None])
    seqs = _pad_to(train.sequences, steps)
    train_idx, val_idx, held_out = split_indices(y, val, fold, val_fraction, seed, f"{name}: training targets",
                                                 stratified=False)
    normalizer = ChannelNormalizer.fit(seqs.x[train_idx], seqs.lengths[train_idx]) if normalize else None
    mean, std = y[train_idx].mean(0), y[train_idx].std(0)
    std = np.where(std < 1e-12, 1.0, std)
    targets = ChannelNormalizer(tuple(float(v) for v in mean), tuple(float(v) for v in std))

    def scaled(values):
        return ((values - mean) / std).astype(np.float32)

    splits = {"train": _split(seqs, scaled(y), train_idx, normalizer)}
    splits["val"] = _split(seqs, scaled(y), val_idx, normalizer) if val is None else None
    for part_name, p in parts.items():
        if p is None:
            continue
        py = _targets(p.labels, f"{name}: {part_name} targets")
        if py.shape[1] != y.shape[1]:
            raise InputError(f"{name}: {part_name} targets have {py.shape[1]} column(s), training targets {y.shape[1]}")
        splits[part_name] = _split(_pad_to(p.sequences, steps), scaled(py), None, normalizer)
    d = seqs.x.shape[2]
    return Task(name=name, train=splits["train"], val=splits["val"], test=splits.get("test"),
                num_classes=y.shape[1], normalization=normalizer, regression=True, target_normalization=targets,
                held_out_validation=held_out,
                description=description or f"{name}: {len(y)} sequences with {y.shape[1]} real target(s), {d} "
                                           f"channel(s), up to {steps} steps")


def task_from_sequences(train: LabelledSequences, test: LabelledSequences | None = None,
                        val: LabelledSequences | None = None, name: str = "data", normalize: bool = True,
                        val_fraction: float = VAL_FRACTION, seed: int = 0, description: str = "",
                        classes=None, regression: bool = False, fold: tuple[int, int] | None = None) -> Task:
    """Build a :class:`Task` (see the module docstring); ``classes`` fixes the label order;
    ``regression``: the labels are real targets (:func:`task_from_targets`); ``fold = (k, K)``:
    validation is fold k of a stratified K-fold split (:func:`fold_split`) instead of a hold-out."""
    if regression:
        return task_from_targets(train, test, val, name=name, normalize=normalize, val_fraction=val_fraction,
                                 seed=seed, description=description, fold=fold)
    if np.ndim(train.labels) != 1:
        raise InputError(f"{name}: the labels have shape {np.shape(train.labels)}, one column per sequence is a class "
                         "label; for real-valued targets use regression (--regression, NRNNRegressor)")
    y, classes = encode_labels(train.labels, f"{name}: training labels", classes=classes)
    if len(classes) < 2:
        raise InputError(f"{name}: the training labels hold {len(classes)} class(es) {classes}; need at least two")
    try:  # checkpoints store the labels as JSON: refuse others now, not after training
        [_json_label(c) for c in classes]
    except TypeError as err:
        raise InputError(f"{name}: {err}") from None
    parts = {"test": test, "val": val}
    steps = max([train.sequences.x.shape[1]] + [p.sequences.x.shape[1] for p in parts.values() if p is not None])
    seqs = _pad_to(train.sequences, steps)
    d = seqs.x.shape[2]
    for part_name, p in parts.items():
        if p is not None and p.sequences.x.shape[2] != d:
            raise InputError(f"{name}: {part_name} sequences have {p.sequences.x.shape[2]} channel(s), "
                             f"training sequences {d}")
    train_idx, val_idx, held_out = split_indices(y, val, fold, val_fraction, seed, f"{name}: training labels")
    normalizer = None
    if normalize:
        normalizer = ChannelNormalizer.fit(seqs.x[train_idx], seqs.lengths[train_idx])
    splits = {"train": _split(seqs, y, train_idx, normalizer)}
    splits["val"] = _split(seqs, y, val_idx, normalizer) if val is None else None
    for part_name, p in parts.items():
        if p is None:
            continue
        py, _ = encode_labels(p.labels, f"{name}: {part_name} labels", classes=classes)
        splits[part_name] = _split(_pad_to(p.sequences, steps), py, None, normalizer)
    return Task(name=name, train=splits["train"], val=splits["val"], test=splits.get("test"),
                num_classes=len(classes), classes=classes, normalization=normalizer, held_out_validation=held_out,
                description=description or f"{name}: {len(y)} labelled sequences, {d} channel(s), "
                                           f"up to {steps} steps, {len(classes)} classes")


def task_from_arrays(X, y, X_test=None, y_test=None, *, lengths=None, lengths_test=None, X_val=None, y_val=None,
                     lengths_val=None, layout: str = "ntd", normalize: bool = True,
                     val_fraction: float = VAL_FRACTION, seed: int = 0, name: str = "arrays",
                     regression: bool = False) -> Task:
    """A task from arrays: X (n, T) or (n, T, d) (``layout="ndt"``: (n, d, T)) or a list of
    unequal-length sequences, labels of any hashable type (``regression``: real targets (n,) or
    (n, k)), optional test (and validation) parts."""

    def labelled(Xp, yp, lp, what):
        seqs = as_sequences(Xp, lp, layout=layout, what=what)
        yp = np.asarray(yp)
        if yp.ndim == 2 and not regression and len(yp) == len(seqs):
            raise InputError(f"{what}: y has shape {yp.shape}, {yp.shape[1]} values per sequence, but a class label is "
                             "one; for real-valued targets use regression (regression=True, --regression)")
        if (yp.ndim != 1 and not (regression and yp.ndim == 2)) or len(yp) != len(seqs):
            raise InputError(f"{what} has {len(seqs)} sequences but y has shape {yp.shape} (one label per sequence)")
        return LabelledSequences(seqs, yp)

    for a, b, what in ((X_test, y_test, "X_test/y_test"), (X_val, y_val, "X_val/y_val")):
        if (a is None) != (b is None):
            raise InputError(f"{what} must be given together")
    train = labelled(X, y, lengths, "X")
    test = labelled(X_test, y_test, lengths_test, "X_test") if X_test is not None else None
    val = labelled(X_val, y_val, lengths_val, "X_val") if X_val is not None else None
    return task_from_sequences(train, test, val, name=name, normalize=normalize, val_fraction=val_fraction, seed=seed,
                               regression=regression)


def load_data_task(path, normalize: bool = True, val_fraction: float = VAL_FRACTION, seed: int = 0,
                   test_path=None, regression: bool | None = None, fold: tuple[int, int] | None = None) -> Task:
    """A task from a data file (:func:`noisyrnn.data.readers.read_data_file`); a file
    ``NAME_TRAIN.ext`` with a sibling ``NAME_TEST.ext`` takes that as its test part.
    ``regression``: real-valued targets; None: as the file declares (a ``.ts`` header's
    ``@targetLabel true``), else classification."""
    path = Path(path)
    data = read_data_file(path)
    test = data.test
    if test_path is None and test is None and "_TRAIN" in path.name:
        sibling = path.with_name(path.name.replace("_TRAIN", "_TEST"))
        test_path = sibling if sibling.is_file() else None
    if test_path is not None:
        if test is not None:
            raise DataError(f"{path} already holds test data (X_test); do not also pass a test file")
        test = read_data_file(test_path).train
    name = path.name.split(".")[0].replace("_TRAIN", "")
    if regression is None:
        regression = data.train.targets
    return task_from_sequences(data.train, test, name=name, normalize=normalize, val_fraction=val_fraction,
                               seed=seed, description=f"{name} from {path}", regression=regression, fold=fold)


def load_ucr_task(name: str, data_dir=None, download: bool = False, normalize: bool = True,
                  val_fraction: float = VAL_FRACTION, seed: int = 0, regression: bool | None = None,
                  fold: tuple[int, int] | None = None) -> Task:
    """UCR/UEA dataset ``name`` with the archive's own train/test split (``--task ucr:NAME``);
    validation is a stratified split of the archive's training part."""
    from .ucr import ucr_split_files

    files = ucr_split_files(name, data_dir, download)
    train, test = (read_data_file(files[s]).train for s in ("TRAIN", "TEST"))  # by suffix: .ts or UCR text
    return task_from_sequences(train, test, name=f"ucr:{name}", normalize=normalize, val_fraction=val_fraction,
                               seed=seed, description=f"UCR/UEA {name} from {files['TRAIN'].parent}",
                               regression=train.targets if regression is None else regression, fold=fold)


def read_labelled_split(path, classes, normalization, what: str | None = None) -> tuple[Split, list | None]:
    """New data read as a trained model reads them: (split, the file's labels or None). A
    file's test part is used when it has one; its labels are encoded with ``classes`` (the
    model's; None: not encoded, ``split.y`` is -1)."""
    data = read_data_file(path)
    part = data.test if data.test is not None else data.train
    labels = part.labels if classes is not None else None
    split = sequences_to_split(part.sequences, labels, classes, normalization, what or str(path))
    raw = None if part.labels is None else [v.item() if hasattr(v, "item") and np.ndim(v) == 0
                                            else (v.tolist() if hasattr(v, "tolist") else v) for v in part.labels]
    return split, raw


def sequences_to_split(seqs: Sequences, labels, classes, normalization, what="data") -> Split:
    if isinstance(normalization, dict):
        normalization = ChannelNormalizer.from_dict(normalization)
    if normalization is not None:
        x = normalization.apply(seqs.x, seqs.lengths) if seqs.x.shape[2] == len(normalization.mean) else None
        if x is None:
            raise InputError(f"{what}: sequences have {seqs.x.shape[2]} channel(s), the model was trained on "
                             f"{len(normalization.mean)}")
        seqs = Sequences(x, seqs.lengths)
    if labels is None:
        y = np.full(len(seqs), -1, dtype=np.int64)
    else:
        y, _ = encode_labels(labels, f"{what}: labels", classes=classes)
    return _split(seqs, y)
