"""Reading (optionally compressed) data files, checksums, atomic writes and downloads."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from ..errors import DataError

DATA_DIR_ENV = "NOISYRNN_DATA_DIR"
CACHE_DIR_ENV = "NOISYRNN_CACHE_DIR"
COMPRESSED_SUFFIXES = (".xz", ".gz")


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it ends in .xz or .gz."""
    path = Path(path)
    try:
        if path.suffix == ".xz":
            return lzma.decompress(path.read_bytes())
        if path.suffix == ".gz":
            return gzip.decompress(path.read_bytes())
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except (lzma.LZMAError, gzip.BadGzipFile, EOFError, OSError) as err:
        raise DataError(f"cannot read data file {path}: corrupt or truncated ({err})") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_sha256(data: bytes, expected: str, what: str) -> None:
    """Raise DataError naming ``what`` when sha256(data) differs from ``expected``."""
    actual = sha256_hex(data)
    if actual != expected.lower():
        raise DataError(
            f"checksum mismatch for {what}: expected sha256 {expected}, got {actual}; "
            "the file is corrupt or not the expected version (delete it to re-download)"
        )


def read_checksum_file(path: Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style file into {filename: hexdigest}; {} if it is absent."""
    path = Path(path)
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0]
    return sums


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name`` or a compressed sibling (name.xz, name.gz), whichever exists."""
    for candidate in [name] + [name + s for s in COMPRESSED_SUFFIXES]:
        p = Path(directory) / candidate
        if p.is_file():
            return p
    return None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def cache_dir() -> Path:
    """Where downloads go: $NOISYRNN_CACHE_DIR, else ~/.cache/noisyrnn."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "noisyrnn"


def download(url: str, dest: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``sha256`` when given.

    A file already at ``dest`` with the right checksum is reused; a wrong one is an error.
    """
    dest = Path(dest)
    if dest.is_file():
        if sha256 is not None:
            verify_sha256(dest.read_bytes(), sha256, str(dest))
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        if sha256 is not None:
            verify_sha256(Path(tmp).read_bytes(), sha256, f"{url} (downloaded)")
        os.replace(tmp, dest)
    except OSError as err:
        raise DataError(f"download of {url} failed: {err}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
