"""The published numbers in ``experiments.paper`` against the paper's own text (../shared/paper)."""

import re
from pathlib import Path

import pytest

from noisyrnn.experiments.paper import MNIST_COLUMNS, PAPER, TABLE3_ECG, TABLE12_MNIST, paper_value

PAPER_TEXT = Path(__file__).resolve().parents[2] / "shared" / "paper" / "noisy-recurrent-neural-networks.txt"
ROW_NAMES = {  # the paper's row label -> our model name
    "Antisymmetric RNN": "antisymmetric", "CoRNN": "cornn", "Exponential RNN": "exprnn",
    "Lipschitz RNN": "lipschitz", "NRNN (mult./add. noise: 0.02/0.02)": "nrnn",
    "NRNN (mult./add. noise: 0.02/0.05)": "nrnn_high", "NRNN (mult./add. noise: 0.03/0.06)": "nrnn",
}


def paper_table(text: str, caption_start: str) -> dict[str, list[float]]:
    """Rows of the tab-separated table that follows the caption ``caption_start``."""
    lines = text[text.index(caption_start):].splitlines()[1:]
    rows, started = {}, False
    for line in lines:
        cells = line.split("\t")
        if len(cells) > 1 and cells[0] != "Name":
            label = re.sub(r"\s*\[\d+\]$", "", cells[0].strip())
            rows[ROW_NAMES[label]] = [float(c.strip().rstrip("%")) for c in cells[1:]]
            started = True
        elif started and not line.strip():
            break
    return rows


@pytest.fixture(scope="module")
def text():
    if not PAPER_TEXT.is_file():
        pytest.skip("the paper's text (../shared/paper) is not beside this checkout")
    return PAPER_TEXT.read_text()


def test_table3_is_the_papers(text):
    assert paper_table(text, "Table 3: Robustness") == TABLE3_ECG


def test_tables_1_and_2_are_the_papers(text):
    t1 = paper_table(text, "Table 1: Robustness")
    t2 = paper_table(text, "Table 2: Robustness")
    assert set(t1) == set(t2) == set(TABLE12_MNIST)
    for model, row in TABLE12_MNIST.items():
        assert row == t1[model] + t2[model], model
        assert paper_value("mnist", model, "fgsm_0.1") == t2[model][2]


def test_proxy_tasks_have_no_paper_numbers_of_their_own():
    """The row-by-row proxy (T=28) is another task: the paper's pixel numbers are not its own."""
    for task in ("mnist_rows", "pmnist_rows"):
        assert task not in PAPER and paper_value(task, "nrnn", "clean") is None
    assert len(MNIST_COLUMNS) == 11


def _results(task):
    cols = {c: {"mean": 0.5, "std": 0.0, "n": 1} for c in MNIST_COLUMNS}
    return {"task": task, "columns": MNIST_COLUMNS, "models": {"nrnn": cols}}


def test_report_shows_a_gap_only_against_the_same_task():
    from noisyrnn.experiments.report import markdown_table

    pixel = markdown_table(_results("mnist"))
    assert "| | gap | -49.1 |" in pixel  # 50.0 ours vs the paper's 99.1
    rows = markdown_table(_results("mnist_rows"))
    assert "gap" not in rows and "| | paper (mnist, another task) | 99.1 |" in rows
