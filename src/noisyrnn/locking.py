"""One owner per folder: an advisory OS lock (``flock``) held for as long as a process works there.

A results store, a training folder and each run a sweep trains are owned by one process at a
time. The lock file records who holds it (pid, host, command, start time) so that a second
process can say whom it is waiting for. The OS releases the lock when the holder exits,
however it exits (SIGKILL included), so a stale lock file never blocks anybody.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from .errors import NoisyRNNError


class FolderBusy(NoisyRNNError):
    """Another process holds the folder's lock."""


class FolderLock:
    """Exclusive lock on ``folder/name``. ``wait``: block until it is free instead of raising
    :class:`FolderBusy` naming the holder (and ``hint``, what the caller may do about it). Use as
    a context manager, or :meth:`try_acquire`."""

    def __init__(self, folder, name: str = ".lock", what: str = "folder", wait: bool = False, hint: str = "") -> None:
        self.folder, self.path, self.what, self.wait = Path(folder), Path(folder) / name, what, bool(wait)
        self.hint = hint
        self._fd: int | None = None

    def holder(self) -> dict:
        """What the current holder wrote into the lock file ({} if it cannot be read)."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False if another process (or another open of it) holds it."""
        if self._fd is not None:
            return True
        if self.folder.exists() and not self.folder.is_dir():
            raise NoisyRNNError(f"{self.what} {self.folder} is a file, not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv[:6])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return True

    def acquire(self) -> "FolderLock":
        if not self.try_acquire():
            h = self.holder()
            who = (f"process {h.get('pid')} on {h.get('host')} since {h.get('since')} ({h.get('command')})"
                   if h else "another process")
            raise FolderBusy(f"{self.what} {self.folder} is in use by {who}; wait for it to finish"
                             + (f" ({self.hint})" if self.hint else ""))
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
