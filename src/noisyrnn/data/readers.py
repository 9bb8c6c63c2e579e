"""Readers for users' data files: ``.npz``, CSV (UCR layout) and the UCR/UEA ``.ts`` format.

Each reader returns :class:`LabelledSequences` for the file's training part and, where the
file has one, its test part. Errors are :class:`~noisyrnn.errors.DataError` naming the file
and the fault; nothing is ever unpickled (``np.load(allow_pickle=False)``).

* ``.npz``: keys ``X`` ((n, T) or (n, T, d)), ``y`` (n,), optional ``lengths`` (n,),
  optional ``X_test``, ``y_test``, ``lengths_test``; any other key is an error.
* CSV (``.csv``, ``.txt``, ``.tsv``): one series per row, the label in the first column,
  comma, tab or white-space separated (the UCR text layout). Rows must have equal numbers of
  fields; unequal lengths are written as trailing NaN (as the UCR archive does).
* ``.ts``: read with aeon's ``load_from_ts_file`` (univariate, multivariate, unequal length;
  ``pip install noisyrnn[aeon]``). aeon accepts header lines it does not know and files
  without ``@data``, so the header is checked here first against the format's keywords.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from .files import read_bytes
from .sequences import Sequences, as_sequences

NPZ_KEYS = {"X", "y", "lengths", "X_test", "y_test", "lengths_test"}
CSV_SUFFIXES = (".csv", ".txt", ".tsv")
TS_KEYWORDS = {"@problemname", "@timestamps", "@missing", "@univariate", "@dimension", "@dimensions",
               "@equallength", "@serieslength", "@classlabel", "@targetlabel", "@data"}


@dataclass
class LabelledSequences:
    sequences: Sequences
    labels: np.ndarray | None  # None: an unlabelled file (an .npz without y), for predict
    targets: bool = False  # the file declares real-valued targets (a .ts header's @targetLabel true)


@dataclass
class DataFile:
    train: LabelledSequences
    test: LabelledSequences | None
    path: Path


def _labelled(X, y, lengths, path, part: str, layout: str = "ntd") -> LabelledSequences:
    try:
        seqs = as_sequences(X, lengths, layout=layout, what=f"{path} ({part})")
    except InputError as err:
        raise DataError(str(err)) from None
    if y is None:
        return LabelledSequences(seqs, None)
    y = np.asarray(y)
    if y.ndim not in (1, 2) or len(y) != len(seqs):
        raise DataError(f"{path} ({part}): {len(seqs)} sequences but labels of shape {y.shape}")
    return LabelledSequences(seqs, y)


def read_npz(path: Path) -> DataFile:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except ValueError as err:  # object arrays need pickle: refused
        raise DataError(f"{path}: cannot read without pickle ({err}); store numbers and strings only") from None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise DataError(f"{path} is not a valid .npz file: corrupt or truncated ({err})") from None
    unknown = set(arrays) - NPZ_KEYS
    if unknown:
        raise DataError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(NPZ_KEYS))}")
    if "X" not in arrays:
        raise DataError(f"{path} lacks the key 'X' (expected X (n, T[, d]) and y (n,))")
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: X_test and y_test must be given together")
    train = _labelled(arrays["X"], arrays.get("y"), arrays.get("lengths"), path, "X")
    test = None
    if "X_test" in arrays:
        test = _labelled(arrays["X_test"], arrays["y_test"], arrays.get("lengths_test"), path, "X_test")
    elif "lengths_test" in arrays:
        raise DataError(f"{path}: lengths_test given without X_test")
    return DataFile(train, test, path)


def parse_csv(data: bytes, path) -> LabelledSequences:
    """One series per row, label first; comma, tab or white-space separated."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text file (non-UTF-8 bytes)") from None
    rows = [r.strip() for r in text.splitlines()]
    rows = [r for r in rows if r]
    if not rows:
        raise DataError(f"{path} is empty")
    sep = "," if "," in rows[0] else ("\t" if "\t" in rows[0] else None)
    fields = [[f.strip() for f in r.split(sep)] for r in rows]
    width = len(fields[0])
    for i, f in enumerate(fields):
        if len(f) != width:
            raise DataError(f"{path}: row {i + 1} has {len(f)} fields, row 1 has {width} (ragged rows; "
                            "write unequal-length series padded with NaN, or use .ts / .npz with lengths)")
    if width < 2:
        raise DataError(f"{path}: rows need a label and at least one value")
    try:
        values = np.array([[float(v) for v in f[1:]] for f in fields], dtype=np.float64)
    except ValueError as err:
        raise DataError(f"{path}: non-numeric value ({err})") from None
    labels = np.array([f[0] for f in fields])
    try:  # numeric labels stay numbers (1, 2 rather than '1', '2'), integers as integers
        numeric = labels.astype(np.float64)
        labels = numeric.astype(np.int64) if np.all(numeric == np.round(numeric)) else numeric
    except ValueError:
        pass
    return _labelled(values, labels, None, path, "rows")


def read_csv(path: Path) -> DataFile:
    return DataFile(parse_csv(read_bytes(Path(path)), Path(path)), None, Path(path))


def check_ts_header(text: str, path) -> None:
    """The header lines before ``@data`` must be the .ts format's keywords."""
    for number, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if not s.startswith("@"):
            raise DataError(f"{path}: line {number} comes before @data but is not a header line: {s[:40]!r}")
        key = s.split()[0].lower()
        if key not in TS_KEYWORDS:
            raise DataError(f"{path}: bad .ts header, line {number}: unknown keyword {s.split()[0]!r}")
        if key == "@data":
            return
    raise DataError(f"{path}: bad .ts header: no @data line")


def parse_ts(path: Path) -> LabelledSequences:
    path = Path(path)
    data = read_bytes(path)
    check_ts_header(data.decode("utf-8", errors="replace"), path)
    try:
        from aeon.datasets import load_from_ts_file
    except ImportError:
        raise DataError(f"reading {path} needs aeon's .ts reader: pip install 'noisyrnn[aeon]'") from None
    source = path
    if path.suffix in (".xz", ".gz"):  # aeon reads plain files
        import tempfile

        tmp = tempfile.NamedTemporaryFile(suffix=".ts", delete=False)
        tmp.write(data)
        tmp.close()
        source = Path(tmp.name)
    try:
        X, y = load_from_ts_file(str(source))
    except Exception as err:  # aeon raises IOError/ValueError/IndexError for a malformed body
        raise DataError(f"{path}: malformed .ts file ({type(err).__name__}: {err})") from None
    finally:
        if source != path:
            source.unlink()
    if y is None:
        raise DataError(f"{path} has no class labels (@classLabel false)")
    if ts_declares_targets(data.decode("utf-8", errors="replace")):  # a regression file
        out = _labelled(X, np.asarray(y, dtype=np.float64), None, path, "series", layout="ndt")
        out.targets = True
        return out
    declared = declared_ts_labels(data.decode("utf-8", errors="replace"))
    if declared:
        stray = sorted({str(v) for v in y} - set(declared))
        if stray:
            raise DataError(f"{path}: label(s) {', '.join(repr(v) for v in stray[:5])} are not declared in the header's "
                            f"@classLabel ({' '.join(declared)})")
    return _labelled(X, y, None, path, "series", layout="ndt")


def ts_declares_targets(text: str) -> bool:
    """Whether a .ts header declares real-valued targets (``@targetLabel true``)."""
    for line in text.splitlines():
        parts = line.strip().split()
        if parts and parts[0].lower() == "@targetlabel":
            return len(parts) > 1 and parts[1].lower() == "true"
        if parts and parts[0].lower() == "@data":
            break
    return False


def declared_ts_labels(text: str) -> list[str]:
    """The class labels a .ts header declares (``@classLabel true a b c``); [] if none are listed."""
    for line in text.splitlines():
        parts = line.strip().split()
        if parts and parts[0].lower() == "@classlabel":
            return parts[2:] if len(parts) > 2 and parts[1].lower() == "true" else []
        if parts and parts[0].lower() == "@data":
            break
    return []


def read_ts(path: Path) -> DataFile:
    return DataFile(parse_ts(path), None, Path(path))


def read_data_file(path) -> DataFile:
    """Read a user's data file by its suffix (.npz, .csv/.txt/.tsv, .ts; optionally .xz/.gz)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path does not exist: {path}")
    if path.is_dir():
        raise DataError(f"data path {path} is a folder; name a .npz, .csv or .ts file (or use --task ucr:NAME)")
    suffixes = [s.lower() for s in path.suffixes]
    plain = suffixes[-2] if suffixes and suffixes[-1] in (".xz", ".gz") and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    if plain == ".npz":
        return read_npz(path)
    if plain in CSV_SUFFIXES:
        return read_csv(path)
    if plain == ".ts":
        return read_ts(path)
    raise DataError(f"{path}: unknown data file type {plain or '(no suffix)'!r}; use .npz, .csv, .txt, .tsv or .ts")


__all__ = ["DataFile", "LabelledSequences", "read_data_file", "read_npz", "read_csv", "read_ts", "parse_csv",
           "parse_ts", "check_ts_header"]
