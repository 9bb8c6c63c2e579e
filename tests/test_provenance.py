"""Results record the code that produced them; a store of mixed versions says so."""

import shutil
import subprocess
from pathlib import Path

import pytest

from noisyrnn import __version__
from noisyrnn.experiments.report import results_from_index, write_report
from noisyrnn.provenance import code_version, describe

ROOT = Path(__file__).resolve().parents[1]


def test_code_version_is_this_checkout_s_commit():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    code = code_version()
    assert code["version"] == __version__ and code["commit"] == head and isinstance(code["dirty"], bool)
    assert describe(code).startswith(f"noisyrnn {__version__}, commit {head[:10]}")


def _row(seed, code):
    return {"run": "nrnn", "model": "nrnn", "seed": seed, "status": "done", "accuracy": {"clean": 0.9},
            "code": code}


def test_a_store_that_mixes_code_versions_says_so(tmp_path):
    a = {"version": "0.1.0", "commit": "a" * 40, "dirty": False}
    b = {"version": "0.1.0", "commit": "b" * 40, "dirty": True}
    one = results_from_index([_row(0, a), _row(1, a)], ["clean"], "ecg")
    assert one["code"] == [a]
    write_report(tmp_path, one)
    assert f"Produced by noisyrnn 0.1.0, commit {'a' * 10}." in (tmp_path / "report.md").read_text()
    mixed = results_from_index([_row(0, a), _row(1, b), _row(2, None)], ["clean"], "ecg")
    assert len(mixed["code"]) == 3
    write_report(tmp_path, mixed)
    text = (tmp_path / "report.md").read_text()
    assert "**This store mixes code versions**" in text and "(with uncommitted changes)" in text
    assert "unrecorded code version" in text
