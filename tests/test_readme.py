"""The documented examples, run as written: the README's quickstart and the user guide's
"Your own data" page (Python blocks, then command lines)."""

import re
import shlex
from pathlib import Path

import pytest

from noisyrnn.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
OWN_DATA = ROOT / "docs" / "guide" / "own-data.md"


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def section(path: Path, heading: str | None = None) -> str:
    text = path.read_text()
    if heading is None:
        return text
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def run_lines(text: str, skip=("pip ",)) -> list[str]:
    lines = [ln for block in blocks(text, "bash") for ln in block.splitlines()
             if ln.strip() and not ln.startswith(skip)]
    for line in lines:
        argv = shlex.split(line.split("#")[0])
        assert argv[0] == "noisyrnn"
        assert main(argv[1:] + ["--no-progress"] if argv[1] in ("train", "search") else argv[1:]) == 0, line
    return lines


def test_readme_quickstart_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text = section(README, "## Quickstart")
    python = blocks(text, "python")
    assert len(python) == 1
    namespace: dict = {}
    exec(compile(python[0], "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["clf"].classes_.tolist() == ["down", "up"]
    assert len(run_lines(text)) == 2
    assert (tmp_path / "runs" / "gunpoint" / "model.safetensors").is_file()
    assert "train.epochs" in capsys.readouterr().out


def test_user_guide_own_data_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text = section(OWN_DATA)
    python = blocks(text, "python")
    assert len(python) == 3  # arrays and train_model; the classifier estimator; the regressor
    namespace: dict = {}
    for block in python:
        exec(compile(block, "own-data.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["reg"].score(namespace["X"][100:], namespace["y"][100:]) > 0.5
    assert (tmp_path / "sensors.npz").is_file() and (tmp_path / "runs" / "clf" / "model.safetensors").is_file()
    assert len(run_lines(text)) == 5
    assert (tmp_path / "runs" / "preds.csv").read_text().startswith("index,predicted,label,prob_calm,prob_tremor")
    assert (tmp_path / "runs" / "sensors" / "robustness" / "report.md").is_file()
    assert (tmp_path / "runs" / "search" / "best.json").is_file()
    assert (tmp_path / "runs" / "search" / "refit" / "runs" / "lipschitz" / "seed0" / "model.safetensors").is_file()
    capsys.readouterr()


def test_readme_is_a_landing_page():
    """Under 250 lines, the two commands first, and every relative link resolves."""
    text = README.read_text()
    assert len(text.splitlines()) < 250
    assert blocks(text, "bash")[0].splitlines()[:2] == [
        line for line in blocks(text, "bash")[0].splitlines() if line.startswith(("make reproduce", "make test"))]
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


if __name__ == "__main__":
    pytest.main([__file__])
