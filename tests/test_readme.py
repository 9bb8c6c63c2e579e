"""The README's "Your own data" examples, run as written (Python blocks, then CLI lines)."""

import re
import shlex
from pathlib import Path

import pytest

from noisyrnn.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def section_blocks(lang: str) -> list[str]:
    text = README.read_text()
    start = text.index("## Your own data")
    end = text.index("\n## ", start + 1)
    return re.findall(rf"```{lang}\n(.*?)```", text[start:end], flags=re.S)


def test_readme_own_data_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    python = section_blocks("python")
    assert len(python) == 2
    namespace: dict = {}
    for block in python:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert (tmp_path / "sensors.npz").is_file() and (tmp_path / "runs" / "clf" / "model.safetensors").is_file()
    lines = [ln for block in section_blocks("bash") for ln in block.splitlines() if ln.strip()]
    assert len(lines) == 5
    for line in lines:
        argv = shlex.split(line.split("#")[0])
        assert argv[0] == "noisyrnn"
        assert main(argv[1:] + ["--no-progress"] if argv[1] in ("train", "search") else argv[1:]) == 0, line
    assert (tmp_path / "runs" / "preds.csv").read_text().startswith("index,predicted,label,prob_calm,prob_tremor")
    assert (tmp_path / "runs" / "sensors" / "robustness" / "report.md").is_file()
    assert (tmp_path / "runs" / "search" / "best.json").is_file()
    capsys.readouterr()


if __name__ == "__main__":
    pytest.main([__file__])
