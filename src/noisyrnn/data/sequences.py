"""User sequences as one padded array: (n, T, d) float32 values plus each sequence's length.

Accepted inputs (``layout`` names the axis order of one sequence):

* an array (n, T) (univariate) or (n, T, d), or (n, d, T) with ``layout="ndt"`` (aeon/sktime);
* a list of per-sequence arrays of unequal length, each (T_i,) or (T_i, d) (or (d, T_i)
  with ``layout="ndt"``).

Sequences are padded at the end with zeros. Trailing steps that are NaN in every channel
are padding too (the convention of the UCR/UEA archives' unequal-length files); any other
NaN or infinite value is an error that names the sequence and the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

LAYOUTS = ("ntd", "ndt")


@dataclass
class Sequences:
    """Padded values x (n, T, d) float32 and lengths (n,) int64 (1 <= length <= T)."""

    x: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def equal_length(self) -> bool:
        return bool((self.lengths == self.x.shape[1]).all())


def _refuse_complex(a, what: str) -> None:
    if np.iscomplexobj(a):
        raise InputError(f"{what} holds complex numbers; give real values (e.g. the magnitude, or the real and "
                         "imaginary parts as two channels)")


def _one_sequence(a, layout: str, what: str, i: int) -> np.ndarray:
    _refuse_complex(a, f"{what}: sequence {i}")
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    elif a.ndim == 2:
        a = a.T if layout == "ndt" else a
    else:
        raise InputError(f"{what}: sequence {i} must be 1-D or 2-D, got shape {a.shape}")
    return a


def _trailing_nan_length(seq: np.ndarray) -> int:
    """Steps before the trailing run of all-NaN steps."""
    all_nan = np.isnan(seq).all(axis=1)
    if not all_nan.any():
        return seq.shape[0]
    keep = np.flatnonzero(~all_nan)
    return int(keep[-1]) + 1 if keep.size else 0


def _split(X, layout: str, what: str) -> list[np.ndarray]:
    """``X`` as a list of float64 (T_i, d) arrays, one per sequence, in the ``ntd`` layout."""
    ragged = isinstance(X, (list, tuple)) or (isinstance(X, np.ndarray) and X.dtype == object)
    if ragged:
        try:
            return [_one_sequence(a, layout, what, i) for i, a in enumerate(X)]
        except (TypeError, ValueError) as err:
            raise InputError(f"{what} must be an array or a list of per-sequence arrays of numbers: {err}") from None
    _refuse_complex(X, what)
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{what} must hold numbers: {err}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim == 3:
        arr = arr.transpose(0, 2, 1) if layout == "ndt" else arr
    else:
        raise InputError(f"{what} must have shape (n, T) or (n, T, d)"
                         f"{' (layout ndt: (n, d, T))' if layout == 'ndt' else ''}, got {arr.shape}")
    return list(arr)


def _channels(seqs: list[np.ndarray], what: str) -> int:
    """The one channel count all sequences share."""
    if not seqs:
        raise InputError(f"{what} holds no sequences")
    dims = {s.shape[1] for s in seqs}
    if len(dims) > 1:
        raise InputError(f"{what}: sequences have different numbers of channels {sorted(dims)}")
    (d,) = dims
    if d == 0:
        raise InputError(f"{what}: sequences have no channels")
    return d


def _given_lengths(lengths, seqs: list[np.ndarray], what: str) -> np.ndarray:
    """User-given lengths, checked: one integer in [1, T_i] per sequence."""
    given = np.asarray(lengths)
    if given.shape != (len(seqs),):
        raise InputError(f"lengths for {what} must have shape ({len(seqs)},), got {given.shape}")
    if not np.issubdtype(given.dtype, np.integer):
        if not np.all(np.isfinite(given)) or not np.all(given == np.round(given)):
            raise InputError(f"lengths for {what} must be integers")
    given = given.astype(np.int64)
    longest = np.array([s.shape[0] for s in seqs])
    bad = np.flatnonzero((given < 1) | (given > longest))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"lengths for {what}: sequence {i} has length {int(given[i])}, "
                         f"outside [1, {int(longest[i])}]")
    return given


def _pad(seqs: list[np.ndarray], lengths: np.ndarray, d: int, what: str) -> np.ndarray:
    """The first ``lengths[i]`` steps of each sequence, zero-padded to (n, T, d) float32; any
    NaN or infinite value inside them is an error naming the sequence, step and channel."""
    out = np.zeros((len(seqs), int(lengths.max()), d), dtype=np.float64)
    for i, (s, L) in enumerate(zip(seqs, lengths)):
        if L == 0:
            raise InputError(f"{what}: sequence {i} is empty (no step with a value)")
        part = s[:L]
        bad = ~np.isfinite(part)
        if bad.any():
            step, ch = np.argwhere(bad)[0]
            kind = "NaN" if np.isnan(part[step, ch]) else "infinite"
            raise InputError(f"{what}: sequence {i} has a {kind} value at step {step}, channel {ch} "
                             "(only trailing all-NaN steps are read as padding)")
        out[i, :L] = part
    return out.astype(np.float32)


def as_sequences(X, lengths=None, layout: str = "ntd", what: str = "X") -> Sequences:
    """Validate and pad ``X`` (see the module docstring); errors name ``what``."""
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; use 'ntd' (n, T, d) or 'ndt' (n, d, T)")
    seqs = _split(X, layout, what)
    d = _channels(seqs, what)
    if lengths is None:
        own = np.array([_trailing_nan_length(s) for s in seqs], dtype=np.int64)
    else:
        own = _given_lengths(lengths, seqs, what)
    return Sequences(_pad(seqs, own, d, what), own)


def _numeric_first(label):
    """Sort key: labels that read as numbers ('2' < '10') in numeric order, before the rest."""
    try:
        return (0, float(label), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(label))


def encode_labels(y, what: str = "y", classes=None) -> tuple[np.ndarray, list]:
    """Labels of any hashable type to indices 0..C-1 (classes in sorted order when sortable);
    with ``classes`` given, labels outside them are an error."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise InputError(f"{what} must be 1-D (one label per sequence), got shape {y.shape}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise InputError(f"{what} contains NaN or infinite labels")
    values = y.tolist()
    if classes is None:
        distinct = set(values)
        try:
            classes = sorted(distinct, key=_numeric_first)
        except TypeError:
            classes = list(dict.fromkeys(values))
    index = {c: i for i, c in enumerate(classes)}
    unknown = [v for v in dict.fromkeys(values) if v not in index]
    if unknown:
        raise InputError(f"{what} has label(s) {unknown[:5]} not seen in training (classes: {list(classes)[:10]})")
    return np.array([index[v] for v in values], dtype=np.int64), list(classes)
