"""UCR time-series archive datasets in the archive's text format.

Each split is a text file ``NAME_TRAIN.txt`` / ``NAME_TEST.txt`` (optionally .xz or .gz):
one series per row, the class label first, then the values, separated by white space,
commas or tabs. Where the data come from, in this order:

1. ``data_dir`` (the ``--data-dir`` flag), then ``$NOISYRNN_DATA_DIR``; in each, the files
   may sit in the folder itself or in a subfolder ``NAME`` or ``name`` (lower case);
2. the copy bundled with the package (ECG5000 only);
3. the download cache (``$NOISYRNN_CACHE_DIR`` or ~/.cache/noisyrnn/ucr/NAME), filled by
   ``download=True`` from the archive's zip.

A ``SHA256SUMS`` file beside the files (sha256 of the uncompressed files) is verified on
every load; a mismatch is an error. The archive publishes no checksums, so a download is
checked for zip integrity and its sha256 sums are then recorded for later loads.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .files import (
    DATA_DIR_ENV, atomic_write_bytes, atomic_write_text, cache_dir, download, find_file,
    read_bytes, read_checksum_file, sha256_hex, verify_sha256,
)

BUNDLED_DIR = Path(__file__).parent / "bundled"
UCR_URL = "https://www.timeseriesclassification.com/aeon-toolkit/{name}.zip"
SPLITS = ("TRAIN", "TEST")


@dataclass
class UCRDataset:
    """Raw UCR splits: values (n, T) float32 and the archive's integer labels (n,)."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: Path


def parse_ucr_text(data: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one UCR text file into (values, labels); errors name the file and the fault."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise DataError(f"{what} is not a UCR text file (non-text bytes)") from None
    rows = [r for r in text.replace(",", " ").replace("\t", " ").splitlines() if r.strip()]
    if not rows:
        raise DataError(f"{what} is empty")
    width = len(rows[0].split())
    for i, r in enumerate(rows):
        if len(r.split()) != width:
            raise DataError(f"{what}: row {i + 1} has {len(r.split())} fields, expected {width}")
    if width < 2:
        raise DataError(f"{what}: rows need a label and at least one value")
    try:
        table = np.array(" ".join(rows).split(), dtype=np.float64).reshape(len(rows), width)
    except ValueError as err:
        raise DataError(f"{what}: non-numeric field ({err})") from None
    labels = table[:, 0]
    if not np.all(labels == np.round(labels)):
        raise DataError(f"{what}: class labels in the first column must be integers")
    values = table[:, 1:]
    if not np.isfinite(values).all():
        raise DataError(f"{what}: contains NaN or infinite values (variable-length series are not supported)")
    return values.astype(np.float32), labels.astype(np.int64)


def aeon_data_dir() -> Path | None:
    """The folder of UCR/UEA datasets that the aeon package ships (GunPoint, JapaneseVowels, ...)."""
    import importlib.util

    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return folder if folder.is_dir() else None


def _candidate_dirs(name: str, data_dir) -> list[Path]:
    roots = [Path(p) for p in (data_dir, os.environ.get(DATA_DIR_ENV)) if p]
    dirs = []
    for root in roots:
        dirs += [root, root / name, root / name.lower()]
    dirs.append(BUNDLED_DIR)
    dirs.append(cache_dir() / "ucr" / name)
    shipped = aeon_data_dir()
    if shipped is not None:
        dirs.append(shipped / name)
    return dirs


def locate(name: str, data_dir=None, formats=(".txt",)) -> tuple[Path, str] | None:
    """(folder, suffix) of the first folder holding both of ``name``'s split files in one of
    ``formats`` (tried in order in each folder), or None."""
    for d in _candidate_dirs(name, data_dir):
        for suffix in formats:
            if all(find_file(d, f"{name}_{s}{suffix}") for s in SPLITS):
                return d, suffix
    return None


def check_data_dir(data_dir) -> None:
    """A ``--data-dir`` that does not exist is an error, never a silent fall-back to other data."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"data directory does not exist: {data_dir}")


def download_ucr(name: str) -> Path:
    """Download ``name`` from the UCR archive into the cache; returns its folder."""
    target = cache_dir() / "ucr" / name
    zpath = download(UCR_URL.format(name=name), target / f"{name}.zip")
    try:
        with zipfile.ZipFile(zpath) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise DataError(f"downloaded archive {zpath} is corrupt (bad member {bad}); delete it and retry")
            members = {Path(m).name: m for m in zf.namelist()}
            sums = []
            suffixes = [s for s in (".ts", ".txt") if all(f"{name}_{p}{s}" in members for p in SPLITS)]
            if not suffixes:
                raise DataError(f"downloaded archive {zpath} lacks {name}_TRAIN/_TEST (.ts or .txt)")
            for suffix in suffixes:
                for split in SPLITS:
                    fname = f"{name}_{split}{suffix}"
                    data = zf.read(members[fname])
                    atomic_write_bytes(target / fname, data)
                    sums.append(f"{sha256_hex(data)}  {fname}")
    except zipfile.BadZipFile:
        raise DataError(f"downloaded file {zpath} is not a zip archive; delete it and retry") from None
    atomic_write_text(target / "SHA256SUMS", "\n".join(sums) + "\n")
    return target


def load_ucr(name: str, data_dir=None, download: bool = False) -> UCRDataset:
    """Load both splits of UCR dataset ``name`` (text format), verifying checksums where known."""
    files = ucr_split_files(name, data_dir, download, formats=(".txt",))
    (trx, try_), (tex, tey) = [parse_ucr_text(read_bytes(files[s]), str(files[s])) for s in SPLITS]
    if trx.shape[1] != tex.shape[1]:
        raise DataError(f"{name}: train series have length {trx.shape[1]} but test series {tex.shape[1]}")
    return UCRDataset(name, trx, try_, tex, tey, files["TRAIN"].parent)


def bundled_checksums() -> dict[str, str]:
    return read_checksum_file(BUNDLED_DIR / "SHA256SUMS")


def ucr_split_files(name: str, data_dir=None, download: bool = False,
                    formats=(".ts", ".txt", ".tsv")) -> dict[str, Path]:
    """{'TRAIN': path, 'TEST': path} of dataset ``name`` in the first of ``formats`` found (.ts,
    then UCR text), from the data folders, the bundled copy, the cache or aeon's shipped
    datasets; ``download`` fetches the archive's zip when none has it. SHA256SUMS are verified."""
    check_data_dir(data_dir)
    found = locate(name, data_dir, formats)
    if found is None:
        if not download:
            searched = ", ".join(str(d) for d in _candidate_dirs(name, data_dir))
            raise DataError(
                f"UCR/UEA dataset {name!r} not found offline (looked in: {searched}); pass --data-dir, set "
                f"{DATA_DIR_ENV}, or allow downloading (--download)"
            )
        download_ucr(name)
        found = locate(name, data_dir, formats)
        if found is None:
            raise DataError(f"download of UCR dataset {name!r} gave no usable files")
    folder, suffix = found
    sums = read_checksum_file(folder / "SHA256SUMS")
    out = {}
    for split in SPLITS:
        fname = f"{name}_{split}{suffix}"
        path = find_file(folder, fname)
        if fname in sums:
            verify_sha256(read_bytes(path), sums[fname], str(path))
        out[split] = path
    return out


__all__ = ["UCRDataset", "load_ucr", "locate", "download_ucr", "parse_ucr_text", "bundled_checksums",
           "ucr_split_files", "check_data_dir", "aeon_data_dir"]
