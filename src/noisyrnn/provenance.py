"""Which code produced a result: the package version and the git commit of its source tree."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """``{"version", "commit", "dirty"}``; commit is None outside a git checkout (an installed
    wheel), dirty says whether tracked files differed from that commit."""
    from . import __version__

    root = Path(__file__).resolve().parent
    commit, dirty = None, None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip() or None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=root,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"version": __version__, "commit": commit, "dirty": dirty}


def describe(code: dict | None) -> str:
    """One line for a report: ``noisyrnn 0.1.0, commit abc1234 (with uncommitted changes)``."""
    if not code or not code.get("version"):
        return "unrecorded code version"
    text = f"noisyrnn {code.get('version')}"
    if code.get("commit"):
        text += f", commit {code['commit'][:10]}"
        if code.get("dirty"):
            text += " (with uncommitted changes)"
    return text
