"""Dataset loaders: counts and checksums against the published facts, and clear errors."""

import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from noisyrnn.data import load_task, load_ucr
from noisyrnn.data.files import download, sha256_hex
from noisyrnn.data.ucr import BUNDLED_DIR, parse_ucr_text
from noisyrnn.errors import DataError

SHARED_ECG = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg5000"
# Published facts about ECG5000 (../shared/data/README.md).
TRAIN_COUNTS = {1: 292, 2: 177, 3: 10, 4: 19, 5: 2}
TEST_COUNTS = {1: 2627, 2: 1590, 3: 86, 4: 175, 5: 22}
SHA256 = {
    "ECG5000_TEST.txt": "56c2232432cd24f721c494457f00036cb135e68e8ee1b50f8fc0f2cf7eebb981",
    "ECG5000_TRAIN.txt": "0d96aff193311a6dc6111bf0dbd2f7d2313987fbf7a1da4a383d92563876057b",
}


def test_bundled_ecg5000_counts_and_checksums():
    raw = load_ucr("ECG5000")
    assert raw.source == BUNDLED_DIR
    assert raw.train_x.shape == (500, 140) and raw.test_x.shape == (4500, 140)
    assert dict(zip(*np.unique(raw.train_y, return_counts=True))) == TRAIN_COUNTS
    assert dict(zip(*np.unique(raw.test_y, return_counts=True))) == TEST_COUNTS
    for name, digest in SHA256.items():
        assert sha256_hex(lzma.decompress((BUNDLED_DIR / f"{name}.xz").read_bytes())) == digest


def test_ecg_task_split():
    task = load_task("ecg")
    assert (len(task.train), len(task.val), len(task.test)) == (500, 500, 4000)
    assert task.train.x.shape == (500, 140, 1) and task.train.x.dtype == torch.float32
    assert task.train.class_counts(2) == [292, 208]
    # 2919 normal beats in all 5000 (published), so the val + test normals sum to 2627
    assert task.val.class_counts(2)[0] + task.test.class_counts(2)[0] == 2627
    assert abs(task.majority_rate("test") - 0.58) < 0.01
    again = load_task("ecg")
    assert torch.equal(task.test.x, again.test.x), "split must be deterministic"


@pytest.mark.skipif(not SHARED_ECG.is_dir(), reason="shared data folder not present")
def test_data_dir_flag_and_env(monkeypatch):
    raw = load_ucr("ECG5000", data_dir=SHARED_ECG.parent)  # finds the lower-case subfolder
    assert raw.source == SHARED_ECG
    monkeypatch.setenv("NOISYRNN_DATA_DIR", str(SHARED_ECG))
    assert load_ucr("ECG5000").source == SHARED_ECG


def test_corrupt_file_fails_checksum(tmp_path):
    for f in BUNDLED_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    text = lzma.decompress((tmp_path / "ECG5000_TRAIN.txt.xz").read_bytes())
    (tmp_path / "ECG5000_TRAIN.txt.xz").write_bytes(lzma.compress(text.replace(b"1.0000000e+00", b"2.0000000e+00", 1)))
    with pytest.raises(DataError, match="checksum mismatch for .*ECG5000_TRAIN"):
        load_ucr("ECG5000", data_dir=tmp_path)


def test_truncated_compressed_file(tmp_path):
    for f in BUNDLED_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    p = tmp_path / "ECG5000_TEST.txt.xz"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_ucr("ECG5000", data_dir=tmp_path)


def test_missing_dataset_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISYRNN_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="not found.*--data-dir"):
        load_ucr("NoSuchSet", data_dir=tmp_path)


def test_any_ucr_dataset_from_a_data_dir(tmp_path):
    (tmp_path / "Toy_TRAIN.txt").write_text("1,0.5,0.25,0.125\n2,1.0,2.0,3.0\n")
    (tmp_path / "Toy_TEST.txt").write_text("2\t1\t1\t1\n")
    raw = load_ucr("Toy", data_dir=tmp_path)
    assert raw.train_x.tolist() == [[0.5, 0.25, 0.125], [1.0, 2.0, 3.0]]
    assert raw.train_y.tolist() == [1, 2] and raw.test_y.tolist() == [2]


@pytest.mark.parametrize("content,match", [
    (b"1 0.5 0.2\n2 0.1\n", "row 2 has 2 fields"),
    (b"1 0.5 abc\n", "non-numeric"),
    (b"1.5 0.5 0.2\n", "integers"),
    (b"1 nan 0.2\n", "NaN"),
])
def test_malformed_ucr_text(content, match):
    with pytest.raises(DataError, match=match):
        parse_ucr_text(content, "bad.txt")


def test_download_verifies_checksum(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello")
    url = src.as_uri()
    good = download(url, tmp_path / "ok.bin", sha256=sha256_hex(b"hello"))
    assert good.read_bytes() == b"hello"
    with pytest.raises(DataError, match="checksum mismatch"):
        download(url, tmp_path / "bad.bin", sha256="0" * 64)
    assert not (tmp_path / "bad.bin").exists(), "a file failing its checksum must not be kept"


def test_download_ucr_zip_path(tmp_path, monkeypatch):
    import zipfile

    from noisyrnn.data import ucr

    archive = tmp_path / "Toy.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Toy_TRAIN.txt", "1 0.1 0.2\n")
        zf.writestr("Toy_TEST.txt", "2 0.3 0.4\n")
    monkeypatch.setattr(ucr, "UCR_URL", str(tmp_path) + "/{name}.zip")
    monkeypatch.setattr(ucr, "download", lambda url, dest, sha256=None: shutil.copy(url, dest) and Path(dest))
    monkeypatch.setenv("NOISYRNN_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "ucr" / "Toy").mkdir(parents=True)
    raw = load_ucr("Toy", data_dir=None, download=True)
    assert raw.test_y.tolist() == [2]
    assert "Toy_TRAIN.txt" in (tmp_path / "cache" / "ucr" / "Toy" / "SHA256SUMS").read_text()
