"""MNIST loader (counts, checksums, split, permutation), salt and pepper, FGSM/PGD."""

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from noisyrnn import build_model
from noisyrnn.attacks import fgsm, pgd
from noisyrnn.data import load_task
from noisyrnn.data.mnist import load_mnist_arrays, parse_idx, permutation
from noisyrnn.errors import DataError
from noisyrnn.evaluation import robustness
from noisyrnn.perturbations import SaltAndPepper, parse_column

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="shared MNIST copy not present")
# published per-class counts (../shared/data/README.md)
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist_rows():
    return load_task("mnist_rows", data_dir=SHARED)


@needs_mnist
def test_mnist_counts_split_and_range(mnist_rows):
    a = load_mnist_arrays(SHARED)
    assert a["train_images"].shape == (60000, 28, 28) and a["test_images"].shape == (10000, 28, 28)
    assert torch.bincount(torch.from_numpy(a["train_labels"]).long()).tolist() == TRAIN_COUNTS
    assert torch.bincount(torch.from_numpy(a["test_labels"]).long()).tolist() == TEST_COUNTS
    t = mnist_rows
    assert (len(t.train), len(t.val), len(t.test)) == (58000, 2000, 10000)
    assert t.train.x.shape == (58000, 28, 28) and float(t.train.x.max()) == 1.0 and float(t.train.x.min()) == 0.0
    assert [a + b for a, b in zip(t.train.class_counts(10), t.val.class_counts(10))] == TRAIN_COUNTS
    assert t.test.class_counts(10) == TEST_COUNTS


@needs_mnist
def test_pixel_and_permuted_sequences(mnist_rows):
    pix = load_task("mnist", data_dir=SHARED)
    assert pix.test.x.shape == (10000, 784, 1)
    assert torch.equal(pix.test.x.reshape(10000, 28, 28), mnist_rows.test.x)
    perm = load_task("pmnist", data_dir=SHARED)
    assert torch.equal(perm.test.x[:, :, 0], pix.test.x[:, permutation(), 0])
    # the research code's permutation: torch.manual_seed(12008); torch.randperm(784)
    state = torch.get_rng_state()
    torch.manual_seed(12008)
    expected = torch.randperm(784)
    torch.set_rng_state(state)
    assert torch.equal(permutation(), expected)


@needs_mnist
def test_corrupt_mnist_fails_checksum(tmp_path):
    for f in (SHARED / "mnist").iterdir():
        shutil.copy(f, tmp_path / f.name)
    p = tmp_path / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(p.read_bytes()))
    data[100] = (data[100] + 1) % 10
    p.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataError, match="checksum mismatch for .*t10k-labels"):
        load_mnist_arrays(tmp_path)


def test_idx_parser_rejects_bad_files():
    good = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
    assert parse_idx(good, "x").tolist() == [7, 8, 9]
    with pytest.raises(DataError, match="magic"):
        parse_idx(b"\x01\x02\x08\x01", "x")
    with pytest.raises(DataError, match="declares shape"):
        parse_idx(good[:-1], "x")


def test_salt_and_pepper_statistics():
    x = torch.full((200, 50, 10), 0.5)
    out = SaltAndPepper(0.1, (0.0, 1.0))(x, torch.Generator().manual_seed(0))
    n = x.numel()
    hi, lo = (out == 1.0).float().mean().item(), (out == 0.0).float().mean().item()
    sd = (0.05 * 0.95 / n) ** 0.5
    assert abs(hi - 0.05) < 6 * sd and abs(lo - 0.05) < 6 * sd
    assert ((out == 0.5) | (out == 0.0) | (out == 1.0)).all()
    assert parse_column("sp_0.03", (-2.0, 3.0)) == SaltAndPepper(0.03, (-2.0, 3.0))


def small_model_and_batch():
    torch.manual_seed(0)
    model = build_model("nrnn", 28, 10, hidden_size=16, step=0.3, init_std=3.0).eval()
    x = torch.rand(32, 28, 28)
    y = torch.randint(0, 10, (32,))
    return model, x, y


def test_fgsm_equals_torchattacks():
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = small_model_and_batch()
    for eps in (0.01, 0.1):
        ours = fgsm(model, x, y, eps, value_range=(0.0, 1.0))
        theirs = torchattacks.FGSM(model, eps=eps)(x, y)
        assert torch.allclose(ours, theirs, atol=1e-6)


def test_fgsm_is_a_signed_gradient_step_and_pgd_stays_in_the_ball():
    model, x, y = small_model_and_batch()
    eps = 0.05
    adv = fgsm(model, x, y, eps)  # no clamp: exactly x + eps*sign(grad)
    xg = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(xg), y).backward()
    assert torch.allclose(adv, x + eps * xg.grad.sign())
    loss = lambda z: torch.nn.functional.cross_entropy(model(z), y).item()  # noqa: E731
    p = pgd(model, x, y, eps, steps=5, value_range=(0.0, 1.0), generator=torch.Generator().manual_seed(0))
    assert (p - x).abs().max() <= eps + 1e-6 and p.min() >= 0 and p.max() <= 1
    assert loss(p) > loss(x) and loss(adv) > loss(x)


def test_robustness_attacks_and_scores_with_noise_off():
    """Every forward pass of an evaluation, the attacks' included, runs with noise injection
    off (recorded by a spy), and the attacked accuracy is the accuracy on a noise-free FGSM
    step computed here by hand."""
    from noisyrnn.data.task import Split

    model, x, y = small_model_and_batch()
    assert model.injects_noise  # an NRNN: noise on would change every output
    seen = []
    original = model.forward

    def spy(inp, noise=False, generator=None, lengths=None):
        seen.append(noise)
        return original(inp, noise=noise, generator=generator, lengths=lengths)

    model.forward = spy
    acc = robustness(model, Split(x, y), ["clean", "sp_0.1", "fgsm_0.1", "pgd_0.1"], value_range=(0.0, 1.0))
    assert seen and not any(seen)
    xg = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(original(xg, noise=False), y).backward()
    by_hand = (x + 0.1 * xg.grad.sign()).clamp(0, 1)
    with torch.no_grad():
        expected = (original(by_hand, noise=False).argmax(-1) == y).float().mean().item()
        noisy = original(by_hand, noise=True, generator=torch.Generator().manual_seed(0))
        quiet = original(by_hand, noise=False)
    assert acc["fgsm_0.1"] == pytest.approx(expected)
    assert acc["fgsm_0.1"] <= acc["clean"] and acc["pgd_0.1"] <= acc["fgsm_0.1"] + 1e-9
    assert (noisy - quiet).abs().max() > 1e-4  # noise on would have been visible
