"""params.patch: every model reads the series in windows of k samples; the windows equal a
hand-built reshape, the models equal the same model fed those windows, and streaming, export,
seed-batched ensembles and the command line keep the whole pass's results."""

import numpy as np
import pytest
import torch

from noisyrnn import build_model
from noisyrnn.cli import main
from noisyrnn.ensemble import Ensemble
from noisyrnn.errors import ConfigError, InputError
from noisyrnn.models.registry import build_regressor, resolve_params
from noisyrnn.models.windows import windows
from noisyrnn.nn import NoisyRNN
from noisyrnn.predict import TrainedRun
from noisyrnn.training.checkpoint import save_model

MODELS = ["nrnn", "lipschitz", "antisymmetric", "antisymmetric_gated", "cornn", "exprnn", "lstm", "gru"]


def by_hand(x, lengths, k):
    """Windows built sample by sample: step j = [x_{jk}, ..., x_{jk+k-1}] (channels of each sample
    together, samples in time order), zeros past a sequence's length and past T."""
    B, T, d = x.shape
    steps = -(-T // k)
    out = torch.zeros(B, steps, k * d)
    for b in range(B):
        for t in range(min(T, int(lengths[b]) if lengths is not None else T)):
            out[b, t // k, (t % k) * d:(t % k + 1) * d] = x[b, t]
    return out


def test_windows_equal_a_hand_built_reshape():
    torch.manual_seed(0)
    x, lengths = torch.randn(4, 11, 3), torch.tensor([11, 4, 9, 1])
    assert windows(x, lengths, 1) == (x, lengths)  # one sample per step: unchanged
    for k in (2, 3, 5, 11):
        got, got_lengths = windows(x, lengths, k)
        assert torch.equal(got, by_hand(x, lengths, k))
        assert got_lengths.tolist() == [-(-int(v) // k) for v in lengths]
    assert torch.equal(windows(x, None, 4)[0], by_hand(x, None, 4))
    with pytest.raises(InputError, match="lengths must lie in"):
        windows(x, torch.tensor([12, 1, 1, 1]), 3)


@pytest.mark.parametrize("name", MODELS)
def test_a_patched_model_is_the_model_on_windows(name):
    """patch = k gives the logits of the same weights fed the hand-built windows (k d channels)."""
    torch.manual_seed(1)
    x, lengths = torch.randn(5, 12, 2), torch.tensor([12, 5, 7, 1, 10])
    model = build_model(name, 2, 3, seed=0, hidden_size=8, patch=3).eval()
    plain = build_model(name, 6, 3, seed=0, hidden_size=8).eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        got = model(x, lengths=lengths)
        want = plain(by_hand(x, lengths, 3), lengths=(lengths + 2) // 3)
    assert torch.allclose(got, want, atol=1e-6)
    assert model.config["params"]["patch"] == 3 and model.input_size == 2


@pytest.mark.parametrize("name", ["nrnn", "cornn", "exprnn", "lstm"])
def test_streaming_whole_windows_equals_the_whole_pass(name):
    torch.manual_seed(2)
    x, lengths = torch.randn(3, 12, 2), torch.tensor([12, 5, 8])
    model = build_model(name, 2, 4, seed=0, hidden_size=8, patch=3).eval()
    with torch.no_grad():
        whole = model(x, lengths=lengths)
        for chunk in (3, 6):
            state = model.init_state(3)
            for a in range(0, 12, chunk):
                out, state = model.step(x[:, a:a + chunk], state, lengths=(lengths - a).clamp(0, chunk))
            assert torch.allclose(out, whole, atol=1e-5), chunk
        with pytest.raises(InputError, match="multiple of 3 samples"):
            model.step(x[:, :2], model.init_state(3))


def test_seed_batched_members_with_windows_equal_each_alone():
    torch.manual_seed(3)
    x, lengths = torch.randn(4, 10, 2), torch.tensor([10, 3, 7, 9])
    members = [build_model("nrnn", 2, 3, seed=s, hidden_size=8, patch=4) for s in range(3)]
    together = Ensemble(members)(x, noise=True, generators=[torch.Generator().manual_seed(s) for s in range(3)],
                                 lengths=lengths)
    for s, m in enumerate(members):
        alone = m(x, noise=True, generator=torch.Generator().manual_seed(s), lengths=lengths)
        assert torch.allclose(together[s], alone, atol=1e-6)


def test_patch_one_is_left_out_of_configs_and_bad_settings_are_refused():
    assert "patch" not in resolve_params("nrnn", {}) and "patch" not in resolve_params("lstm", {"patch": 1})
    assert resolve_params("gru", {"patch": 4})["patch"] == 4
    with pytest.raises(ConfigError, match="params.patch"):
        resolve_params("nrnn", {"patch": 0})
    with pytest.raises(ConfigError, match="per-step outputs"):
        build_regressor("nrnn", 2, 1, per_step=True, patch=2)
    with pytest.raises(ConfigError, match="read windows"):
        NoisyRNN(2, 8, patch=2)


def test_cli_trains_predicts_streams_and_exports_a_patched_run(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n, T = 36, 14
    y = np.array(["up", "down", "flat"] * (n // 3))
    X = rng.normal(size=(n, T, 1)) + np.where(y == "up", 1.0, np.where(y == "down", -1.0, 0.0))[:, None, None]
    lengths = rng.integers(6, T + 1, size=n)
    data = tmp_path / "d.npz"
    np.savez(data, X=X, y=y, lengths=lengths)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "nrnn", "--out", str(run), "--epochs", "2",
                 "--set", "params.hidden_size=8", "params.patch=4", "--no-progress"]) == 0
    trained = TrainedRun.load(run)
    assert trained.model.patch == 4
    assert main(["predict", str(run), "--data", str(data), "--out", str(tmp_path / "p.csv")]) == 0
    ort = pytest.importorskip("onnxruntime")
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    x = torch.tensor(X[:8], dtype=torch.float32)
    L = torch.tensor(lengths[:8])
    norm = trained.normalization
    z = (x - torch.tensor(norm.mean)) / torch.tensor(norm.std)
    with torch.no_grad():
        want = torch.softmax(trained.model(z, lengths=L), -1).numpy()
    got = session.run(None, {"x": x.numpy(), "lengths": L.numpy(),
                             "state": np.zeros((8, trained.model.hidden_size), dtype=np.float32)})[1]
    assert np.abs(got - want).max() < 1e-5


def test_stream_command_advances_once_per_window_and_flushes_the_last(tmp_path, capsys):
    import io
    import sys

    model = build_model("nrnn", 2, 3, hidden_size=8, seed=3, patch=3)
    save_model(tmp_path / "run", model, extra={"data": {"classes": ["a", "b", "c"], "input_size": 2}})
    torch.manual_seed(0)
    seq = torch.randn(7, 2)
    text = "\n".join(",".join(f"{v:.6f}" for v in row) for row in seq.tolist()) + "\n"
    stdin, sys.stdin = sys.stdin, io.StringIO(text)
    try:
        assert main(["stream", str(tmp_path / "run")]) == 0
    finally:
        sys.stdin = stdin
    rows = [r.split(",") for r in capsys.readouterr().out.strip().splitlines()[1:]]
    assert [int(r[1]) for r in rows] == [3, 6, 7]
    x = torch.tensor([[float(f"{v:.6f}") for v in row] for row in seq.tolist()]).unsqueeze(0)
    for row in rows:
        m = int(row[1])
        with torch.no_grad():
            probs = torch.softmax(model.eval()(x[:, :m], lengths=torch.tensor([m])), -1)[0]
        assert np.allclose([float(v) for v in row[3:]], probs.numpy(), atol=2e-6)


@pytest.mark.parametrize("name", ["nrnn", "gru"])
@pytest.mark.parametrize("lengths", [[1, 4], [-1, 1], [0.5, 1.0], [1, 1, 1]])
def test_bad_chunk_lengths_get_one_clear_error(name, lengths):
    model = build_model(name, 2, 3, seed=0, hidden_size=8).eval()
    with torch.no_grad(), pytest.raises(InputError, match=r"chunk lengths must be \(B,\) = \(2,\) integers in \[0, 3\]"):
        model.step(torch.zeros(2, 3, 2), model.init_state(2), lengths=torch.tensor(lengths))
