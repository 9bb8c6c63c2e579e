"""Resume gives what an uninterrupted run gives, across lr milestones; a folder's run is its own."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import Killed, make_tiny_task, state_epoch
from noisyrnn.errors import ConfigError
from noisyrnn.training import TrainConfig, train_model
from noisyrnn.training.checkpoint import read_training_state
from noisyrnn.training import fit_ensemble

PARAMS = {"hidden_size": 8, "add_noise": 0.1, "mult_noise": 0.1}
CFG = dict(epochs=6, batch_size=16, lr=0.01, lr_milestones=[4])  # the milestone falls after the kill


def same_history(a, b):
    strip = lambda h: [{k: v for k, v in m.items() if k != "seconds"} for m in h]  # noqa: E731
    assert strip(a) == strip(b)


def same_weights(a, b):
    for k, v in a.state_dict().items():
        assert torch.equal(b.state_dict()[k], v), k


def test_train_resumed_across_a_milestone_equals_uninterrupted(tmp_path, tiny_task, kill_after_epoch):
    full = train_model("nrnn", PARAMS, tiny_task, TrainConfig(**CFG), progress=False)
    assert [h["lr"] for h in full.history] == pytest.approx([0.01] * 3 + [0.001] * 3)
    kill_after_epoch(1)
    with pytest.raises(Killed):
        train_model("nrnn", PARAMS, tiny_task, TrainConfig(**CFG), out_dir=tmp_path, progress=False)
    kill_after_epoch(-1)
    resumed = train_model("nrnn", PARAMS, tiny_task, TrainConfig(**CFG), out_dir=tmp_path, progress=False)
    same_history(full.history, resumed.history)  # lr, losses, accuracies of every epoch
    same_weights(full.model, resumed.model)
    assert resumed.best_epoch == full.best_epoch
    meta, _ = read_training_state(tmp_path)
    assert meta["scheduler"]["milestones"] == [[4, 1]]  # integer epochs, not JSON's string keys


def test_ensemble_resumed_across_a_milestone_equals_uninterrupted(tmp_path, tiny_task, kill_after_epoch):
    cfg = TrainConfig(**CFG)
    full = fit_ensemble("nrnn", PARAMS, tiny_task, cfg, [0, 1], progress=False)
    kill_after_epoch(2)
    dirs = [tmp_path / "m0", tmp_path / "m1"]
    with pytest.raises(Killed):
        fit_ensemble("nrnn", PARAMS, tiny_task, cfg, [0, 1], out_dir=tmp_path / "ens", member_dirs=dirs, progress=False)
    kill_after_epoch(-1)
    resumed = fit_ensemble("nrnn", PARAMS, tiny_task, cfg, [0, 1], out_dir=tmp_path / "ens", member_dirs=dirs,
                           progress=False)
    for a, b in zip(full, resumed):
        same_history(a.history, b.history)
        same_weights(a.model, b.model)
    for d, r in zip(dirs, full):  # each member's log on disk is the uninterrupted history
        log = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        same_history(r.history, log)


def test_state_is_one_file_and_stale_temporaries_are_cleaned(tmp_path, tiny_task, kill_after_epoch):
    kill_after_epoch(0)
    with pytest.raises(Killed):
        train_model("lipschitz", {"hidden_size": 4}, tiny_task, TrainConfig(epochs=2), out_dir=tmp_path, progress=False)
    assert not (tmp_path / "state.json").exists()  # tensors and metadata are committed together
    stale = tmp_path / ".state.safetensors.abc123.tmp"
    stale.write_bytes(b"half a write")
    kill_after_epoch(-1)
    res = train_model("lipschitz", {"hidden_size": 4}, tiny_task, TrainConfig(epochs=2), out_dir=tmp_path,
                      progress=False)
    assert not stale.exists()
    assert [h["epoch"] for h in res.history] == [0, 1]  # epoch 0 was not repeated


def test_older_state_with_string_milestones_still_decays(tmp_path, tiny_task, kill_after_epoch):
    """A state written by an older version (metadata in state.json, milestones as string keys)."""
    from safetensors.torch import load_file, save_file

    full = train_model("nrnn", PARAMS, tiny_task, TrainConfig(**CFG), progress=False)
    kill_after_epoch(1)
    with pytest.raises(Killed):
        train_model("nrnn", PARAMS, tiny_task, TrainConfig(**CFG), out_dir=tmp_path, progress=False)
    meta, tensors = read_training_state(tmp_path)
    meta["scheduler"]["milestones"] = {"4": 1}  # what json.dumps made of the Counter
    del meta["info"]["identity"]
    save_file(load_file(tmp_path / "state.safetensors"), tmp_path / "state.safetensors")  # no metadata
    (tmp_path / "state.json").write_text(json.dumps(meta))
    kill_after_epoch(-1)
    resumed = train_model("nrnn", PARAMS, tiny_task, TrainConfig(**CFG), out_dir=tmp_path, progress=False)
    same_history(full.history, resumed.history)


@pytest.mark.parametrize("change,message", [
    ("data", "other data"),
    ("lr", "lr = 0.01 there, 0.02 now"),
    ("params", "model configuration differs"),
])
def test_a_folder_resumes_only_its_own_run(tmp_path, tiny_task, change, message):
    train_model("nrnn", PARAMS, tiny_task, TrainConfig(**CFG), out_dir=tmp_path, progress=False)
    before = (tmp_path / "model.safetensors").read_bytes()
    task, params, cfg = tiny_task, PARAMS, dict(CFG)
    if change == "data":
        task = make_tiny_task(seed=1)
    elif change == "lr":
        cfg["lr"] = 0.02
    else:
        params = {**PARAMS, "hidden_size": 9}
    with pytest.raises(ConfigError, match=message):
        train_model("nrnn", params, task, TrainConfig(**cfg), out_dir=tmp_path, progress=False)
    assert (tmp_path / "model.safetensors").read_bytes() == before  # nothing was touched
    res = train_model("nrnn", params, task, TrainConfig(**cfg), out_dir=tmp_path, resume=False, progress=False)
    assert [h["epoch"] for h in res.history] == list(range(6))  # --overwrite: trained anew


def test_a_saved_model_without_state_is_not_overwritten(tmp_path, tiny_task):
    res = train_model("lipschitz", {"hidden_size": 4}, tiny_task, TrainConfig(epochs=1), out_dir=tmp_path,
                      progress=False)
    (tmp_path / "state.safetensors").unlink()
    with pytest.raises(ConfigError, match="saved model but no training state"):
        train_model("lipschitz", {"hidden_size": 4}, tiny_task, TrainConfig(epochs=1), out_dir=tmp_path,
                    progress=False)
    assert res.best_epoch == 0


def _npz(path, seed=0, n=60, T=12):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, T)) + (2 * y - 1)[:, None]
    np.savez(path, X=X, y=y)
    return path


def _cli(*args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return [sys.executable, "-m", "noisyrnn.cli", *args], env


def test_cli_train_sigkilled_before_the_milestone_resumes_exactly(tmp_path):
    data = _npz(tmp_path / "d.npz")
    args = ["train", "--data", str(data), "--model", "nrnn", "--epochs", "40", "--set", "params.hidden_size=8",
            "--no-progress"]
    cmd, env = _cli(*args, "--out", str(tmp_path / "killed"))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and state_epoch(tmp_path / "killed") < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = state_epoch(tmp_path / "killed")
    assert 3 <= killed_at < 36, killed_at  # the lr milestone (epoch 36 = 90% of 40) is still ahead
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    clean_cmd, _ = _cli(*args, "--out", str(tmp_path / "clean"))
    assert subprocess.run(clean_cmd, env=env, capture_output=True).returncode == 0

    def log(name):
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert log("killed") == log("clean")
    assert log("clean")[36]["lr"] == pytest.approx(0.0003)
    assert (tmp_path / "killed" / "model.safetensors").read_bytes() == (tmp_path / "clean" / "model.safetensors").read_bytes()
