"""Users' data: arrays, .npz, CSV, .ts and UCR/UEA by name; normalisation; clear errors."""

import numpy as np
import pytest
import torch

from noisyrnn.data import load_data_task, load_task, task_from_arrays
from noisyrnn.data.readers import read_data_file
from noisyrnn.data.sequences import as_sequences, encode_labels
from noisyrnn.data.ucr import aeon_data_dir
from noisyrnn.errors import DataError, InputError

AEON = aeon_data_dir()
needs_aeon = pytest.mark.skipif(AEON is None, reason="aeon is not installed")


def toy_arrays(n=40, T=12, d=2, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array(["walk", "run"] * (n // 2))
    X = rng.normal(size=(n, T, d)) * 3.0 + 5.0
    X[y == "run"] += 2.0
    return X, y


def test_arrays_task_encodes_labels_splits_stratified_and_normalises():
    X, y = toy_arrays()
    task = task_from_arrays(X, y, X[:10], y[:10], val_fraction=0.25, seed=3)
    assert task.classes == ["run", "walk"] and task.num_classes == 2
    assert len(task.train) == 30 and len(task.val) == 10
    assert task.val.class_counts(2) == [5, 5]  # stratified
    # z-scored with the training split's statistics (population std), per channel
    mean = np.asarray(task.normalization.mean)
    std = np.asarray(task.normalization.std)
    train_x = task.train.x.numpy().reshape(-1, 2)
    assert np.allclose(train_x.mean(0), 0, atol=1e-5) and np.allclose(train_x.std(0), 1, atol=1e-5)
    assert np.allclose(task.test.x[0].numpy(), (X[0] - mean) / std, atol=1e-5)
    # the same seed gives the same split, another seed another one
    again = task_from_arrays(X, y, val_fraction=0.25, seed=3)
    other = task_from_arrays(X, y, val_fraction=0.25, seed=4)
    assert torch.equal(again.val.x, task.val.x) and not torch.equal(other.val.x, task.val.x)


def test_layout_ndt_equals_ntd_and_univariate_2d():
    X, y = toy_arrays()
    a = task_from_arrays(X, y, seed=0)
    b = task_from_arrays(X.transpose(0, 2, 1), y, layout="ndt", seed=0)
    assert torch.equal(a.train.x, b.train.x)
    u = task_from_arrays(X[:, :, 0], y, seed=0)
    assert u.input_size == 1 and torch.allclose(u.train.x[..., 0], a.train.x[..., 0], atol=1e-6)


def test_unequal_lengths_from_lists_and_trailing_nan():
    seqs = [np.arange(5.0), np.arange(3.0), np.arange(7.0)]
    s = as_sequences(seqs)
    assert s.x.shape == (3, 7, 1) and s.lengths.tolist() == [5, 3, 7]
    assert (s.x[1, 3:] == 0).all()
    padded = np.full((3, 7), np.nan)
    for i, q in enumerate(seqs):
        padded[i, : len(q)] = q
    t = as_sequences(padded)
    assert np.array_equal(t.x, s.x) and t.lengths.tolist() == [5, 3, 7]
    # normalisation statistics come from real steps only; padding stays 0
    task = task_from_arrays(seqs * 4, ["a", "b", "c"] * 4, val_fraction=0.25)
    values = np.concatenate(seqs * 4)
    assert np.isclose(task.normalization.mean[0], values.mean(), rtol=0.2)
    assert task.train.lengths is not None
    for x, L in zip(task.train.x, task.train.lengths):
        assert (x[int(L):] == 0).all()


def test_numeric_string_labels_sort_numerically():
    _, classes = encode_labels(np.array(["10", "2", "1", "2"]))
    assert classes == ["1", "2", "10"]


@pytest.mark.parametrize("make,message", [
    (lambda X, y: (np.where(np.arange(12)[None, :, None] == 4, np.nan, X), y), "NaN value at step 4"),
    (lambda X, y: (np.where(np.arange(12)[None, :, None] == 2, np.inf, X), y), "infinite value at step 2"),
    (lambda X, y: (X, y[:-1]), "has 40 sequences but y has shape"),
    (lambda X, y: (X, np.array(["a"] * 40)), "need at least two"),
    (lambda X, y: (X, np.array(["a"] * 39 + ["b"])), "class 1 has only one example"),
    (lambda X, y: (X[:, :, :, None], y), "must have shape"),
])
def test_bad_arrays_are_named(make, message):
    X, y = make(*toy_arrays())
    with pytest.raises(InputError, match=message):
        task_from_arrays(X, y)


def test_npz_round_trip_with_lengths_and_test(tmp_path):
    X, y = toy_arrays()
    lengths = np.array([12, 7] * 20)
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y, lengths=lengths, X_test=X[:6], y_test=y[:6], lengths_test=lengths[:6])
    task = load_data_task(path)
    assert task.train.lengths is not None and len(task.test) == 6
    assert task.test.lengths.tolist() == lengths[:6].tolist()
    direct = task_from_arrays(X, y, X[:6], y[:6], lengths=lengths, lengths_test=lengths[:6], name="d")
    assert torch.equal(task.train.x, direct.train.x) and torch.equal(task.test.x, direct.test.x)


@pytest.mark.parametrize("content,message", [
    ({"X": np.zeros((4, 3)), "y": np.zeros(4), "extra": np.zeros(1)}, "unknown key"),
    ({"y": np.zeros(4)}, "lacks the key 'X'"),
    ({"X": np.zeros((4, 3)), "y": np.zeros(4), "X_test": np.zeros((2, 3))}, "X_test and y_test"),
])
def test_bad_npz_is_named(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    with pytest.raises(DataError, match=message):
        read_data_file(path)


def test_npz_with_objects_is_refused_without_pickle(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([np.zeros(3), np.zeros(2)], dtype=object), y=np.zeros(2))
    with pytest.raises(DataError, match="without pickle"):
        read_data_file(path)


def test_corrupt_npz(tmp_path):
    path = tmp_path / "c.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=str(path)):
        read_data_file(path)


@pytest.mark.parametrize("sep", [",", "\t", " "])
def test_csv_ucr_layout(tmp_path, sep):
    path = tmp_path / "d.csv"
    rows = [["1", "0.5", "1.5", "2.5"], ["2", "1", "2", "3"], ["1", "4", "nan", "nan"]]
    path.write_text("\n".join(sep.join(r) for r in rows) + "\n")
    data = read_data_file(path)
    assert data.train.labels.tolist() == [1, 2, 1]
    assert data.train.sequences.lengths.tolist() == [3, 3, 1]
    assert data.train.sequences.x[0, :, 0].tolist() == [0.5, 1.5, 2.5]


@pytest.mark.parametrize("text,message", [
    ("1,0.5,1.5\n2,1\n", "row 2 has 2 fields, row 1 has 3"),
    ("1,0.5,abc\n", "non-numeric value"),
    ("1,0.5,nan,1.0\n2,1,2,3\n", "NaN value at step 1"),
    ("1,0.5,inf\n2,1,2\n", "infinite value at step 1"),
    ("", "is empty"),
])
def test_bad_csv_is_named(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        read_data_file(path)
    assert str(path) in str(err.value)


def test_missing_paths_and_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_data_file(tmp_path / "nope.npz")
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(DataError, match="unknown data file type"):
        read_data_file(tmp_path / "x.parquet")
    with pytest.raises(DataError, match="data directory does not exist"):
        load_task("ecg", data_dir=tmp_path / "no" / "such")


@needs_aeon
@pytest.mark.parametrize("header,message", [
    ("@problemName x\n@wibble true\n@data\n1,2,3:1\n", "unknown keyword '@wibble'"),
    ("@problemName x\n@classLabel true 1 2\n1,2,3:1\n", "line 3 comes before @data"),
    ("@problemName x\n@classLabel true 1 2\n", "no @data line"),
    ("@problemName x\nhello\n@data\n1,2,3:1\n", "line 2 comes before @data"),
])
def test_ts_with_bad_header_is_named(tmp_path, header, message):
    path = tmp_path / "bad.ts"
    path.write_text(header)
    with pytest.raises(DataError, match=message):
        read_data_file(path)


@needs_aeon
def test_ts_reader_matches_aeon_on_shipped_datasets():
    from aeon.datasets import load_from_ts_file

    for name in ("JapaneseVowels", "PickupGestureWiimoteZ", "GunPoint"):
        path = AEON / name / f"{name}_TRAIN.ts"
        ours = read_data_file(path).train
        X, y = load_from_ts_file(str(path))
        assert ours.labels.tolist() == list(y)
        for i in (0, 7, len(y) - 1):
            ref = np.asarray(X[i], dtype=np.float64).T  # (T_i, d)
            L = int(ours.sequences.lengths[i])
            assert L == ref.shape[0]
            assert np.allclose(ours.sequences.x[i, :L], ref, atol=1e-6)


@needs_aeon
def test_ucr_by_name_offline_keeps_the_archive_split():
    task = load_task("ucr:JapaneseVowels")
    assert task.input_size == 12 and task.num_classes == 9
    assert len(task.train) + len(task.val) == 270 and len(task.test) == 370
    assert task.train.lengths is not None and int(task.train.lengths.max()) <= task.seq_len
    with pytest.raises(DataError, match="not found offline.*--download"):
        load_task("ucr:NoSuchDataset")


def test_val_fraction_zero_trains_on_every_labelled_sequence_and_needs_the_last_epoch():
    """val_fraction = 0: the training split is all labelled data (the refit after a search),
    validation is that same split, and selecting an epoch on it is refused by name."""
    from noisyrnn.data.user import task_from_arrays
    from noisyrnn.errors import ConfigError
    from noisyrnn.training import TrainConfig, train_model

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 6)), np.array([0, 1, 2] * 10)
    task = task_from_arrays(X, y, X[:6], y[:6], val_fraction=0)
    held = task_from_arrays(X, y, X[:6], y[:6], val_fraction=0.2)
    assert len(task.train) == 30 and len(held.train) + len(held.val) == 30 and len(held.train) < 30
    assert not task.held_out_validation and held.held_out_validation
    assert torch.equal(task.val.x, task.train.x)
    # z-scoring from all 30 sequences, as the data's own statistics say
    assert np.allclose(task.normalization.mean, [X.mean()], atol=1e-5)
    with pytest.raises(ConfigError, match=r"no validation data of its own .* set train\.select = \"last\""):
        train_model("lipschitz", {"hidden_size": 4}, task, TrainConfig(epochs=1), progress=False)
    result = train_model("lipschitz", {"hidden_size": 4}, task, TrainConfig(epochs=2, select="last"), progress=False)
    assert result.best_epoch == 1
