"""prunebounds.data: the real torchvision path on files the tests write themselves."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from prunebounds import data
from prunebounds.errors import DataUnavailableError, ParameterError


def _write_idx_images(path: Path, images: np.ndarray) -> None:
    n, h, w = images.shape
    payload = struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(payload)


def _write_idx_labels(path: Path, labels: np.ndarray) -> None:
    payload = struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(payload)


@pytest.fixture
def fake_mnist_shared(tmp_path, monkeypatch):
    """A shared folder holding genuine-format MNIST archives with known pixels."""
    rng = np.random.default_rng(0)
    shared = tmp_path / "shared"
    raw = shared / "MNIST" / "raw"
    raw.mkdir(parents=True)
    train_x = rng.integers(0, 256, (50, 28, 28))
    train_y = rng.integers(0, 10, 50)
    test_x = rng.integers(0, 256, (20, 28, 28))
    test_y = rng.integers(0, 10, 20)
    _write_idx_images(raw / "train-images-idx3-ubyte.gz", train_x)
    _write_idx_labels(raw / "train-labels-idx1-ubyte.gz", train_y)
    _write_idx_images(raw / "t10k-images-idx3-ubyte.gz", test_x)
    _write_idx_labels(raw / "t10k-labels-idx1-ubyte.gz", test_y)
    monkeypatch.setenv("PRUNEBOUNDS_SHARED_DATA", str(shared))
    # our archives are not the canonical ones: accept their md5s for this test only
    from torchvision.datasets import MNIST

    resources = [(name, data._md5(raw / name)) for name, _ in MNIST.resources]
    monkeypatch.setattr(MNIST, "resources", resources)
    return {"train": (train_x, train_y), "test": (test_x, test_y)}


def test_mnist_from_shared_folder_through_torchvision(tmp_path, fake_mnist_shared):
    root = tmp_path / "data"
    assert data.prepare("mnist", root, download=False) == root
    assert (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    bundle = data.load("mnist", root, download=False)
    train_x, train_y = fake_mnist_shared["train"]
    test_x, test_y = fake_mnist_shared["test"]
    assert len(bundle.train) == 40 and len(bundle.val) == 10 and len(bundle.test) == 20
    # every training sample is one of the written images, normalised to [-1, 1]
    expected = torch.from_numpy(((train_x / 255.0 - 0.5) / 0.5).reshape(50, -1)).float()
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(bundle.train.X, expected[perm[:40]], atol=1e-6)
    assert torch.equal(bundle.train.y, torch.from_numpy(train_y)[perm[:40]].long())
    assert torch.equal(bundle.test.y, torch.from_numpy(test_y).long())
    assert bundle.train.X.min() >= -1 and bundle.train.X.max() <= 1


def test_shared_archive_with_wrong_md5_is_rejected(tmp_path, fake_mnist_shared, monkeypatch):
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "resources", [(n, "0" * 32) for n, _ in MNIST.resources])
    with pytest.raises(DataUnavailableError, match="md5"):
        data.prepare("mnist", tmp_path / "data", download=False)


def test_missing_data_offline_names_folder_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBOUNDS_SHARED_DATA", "")
    with pytest.raises(DataUnavailableError) as err:
        data.prepare("mnist", tmp_path / "empty", download=False)
    msg = str(err.value)
    assert str(tmp_path / "empty" / "MNIST" / "raw") in msg and "make data" in msg


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    monkeypatch.setenv("PRUNEBOUNDS_SHARED_DATA", "")
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # nothing listens there
    with pytest.raises(DataUnavailableError, match="could not be downloaded"):
        data.prepare("mnist", tmp_path / "offline", download=True)


def _write_cifar_batch(path: Path, n: int, rng) -> tuple[np.ndarray, list[int]]:
    pixels = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    with open(path, "wb") as f:
        pickle.dump({"data": pixels, "labels": labels}, f)  # the genuine files use str keys
    return pixels, labels


def test_cifar10_through_torchvision(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    train = [_write_cifar_batch(folder / name, 6, rng) for name, _ in CIFAR10.train_list]
    test = _write_cifar_batch(folder / CIFAR10.test_list[0][0], 7, rng)
    with open(folder / CIFAR10.meta["filename"], "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    # our small files are not the canonical ones: let torchvision check *their* md5s
    monkeypatch.setattr(CIFAR10, "train_list",
                        [[n, data._md5(folder / n)] for n, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list",
                        [[n, data._md5(folder / n)] for n, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta,
                                          "md5": data._md5(folder / CIFAR10.meta["filename"])})
    bundle = data.load("cifar10", root, download=False)
    assert bundle.input_shape == (3, 32, 32) and bundle.n_features == 3072
    assert len(bundle.train) + len(bundle.val) == 30 and len(bundle.test) == 7
    # torchvision's layout: rows are CHW-flattened pixels; ours must match after normalising
    expected = (test[0].astype(np.float32) / 255.0 - 0.5) / 0.5
    assert np.allclose(bundle.test.X.numpy(), expected, atol=1e-6)
    assert bundle.test.y.tolist() == test[1]


def test_cifar_augmentation_is_crop_and_flip():
    X = torch.arange(2 * 3072, dtype=torch.float32).reshape(2, 3072) / 10000.0
    g = torch.Generator().manual_seed(0)
    out = data.augment_cifar(X, g, pad=0).view(2, 3, 32, 32)
    img = X.view(2, 3, 32, 32)
    for i in range(2):  # with no padding the only change can be a horizontal flip
        assert torch.equal(out[i], img[i]) or torch.equal(out[i], img[i].flip(-1))
    out4 = data.augment_cifar(X, torch.Generator().manual_seed(3), pad=4)
    assert out4.shape == X.shape


def test_synthetic_is_seeded_and_learnable_shape():
    a, b = data.synthetic(100, seed=5), data.synthetic(100, seed=5)
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    assert a.X.shape == (100, 784) and set(a.y.tolist()) <= set(range(10))
    assert not torch.equal(a.X, data.synthetic(100, seed=6).X)


def test_unknown_dataset_names_the_valid_ones():
    with pytest.raises(ParameterError, match="cifar10, mnist, synthetic"):
        data.load("imagenet")


def test_batches_cover_every_index_once():
    g = torch.Generator().manual_seed(0)
    idx = torch.cat(list(data.batches(103, 10, g)))
    assert sorted(idx.tolist()) == list(range(103))


def _truncate(path: Path, keep: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(keep)


def test_truncated_extracted_file_is_extracted_again(tmp_path, fake_mnist_shared):
    """A truncated extracted file (a killed extraction) is found by its idx header and
    replaced from the archives, with a warning; the data then load whole."""
    root = tmp_path / "data"
    data.prepare("mnist", root, download=False)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    whole = images.read_bytes()
    _truncate(images, len(whole) - 16)
    with pytest.warns(UserWarning, match=r"train-images-idx3-ubyte is truncated .*extracted it again"):
        data.prepare("mnist", root, download=False)
    assert images.read_bytes() == whole
    assert len(data.load("mnist", root, download=False).train) == 40


def test_truncated_file_without_archives_names_file_and_fix(tmp_path, fake_mnist_shared,
                                                            monkeypatch, capsys):
    root = tmp_path / "data"
    data.prepare("mnist", root, download=False)
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    _truncate(labels, 12)  # header (8 bytes) + 4 of 20 labels
    monkeypatch.setenv("PRUNEBOUNDS_SHARED_DATA", "")  # no archives anywhere
    with pytest.raises(DataUnavailableError) as err:
        data.prepare("mnist", root, download=False)
    msg = str(err.value)
    assert "t10k-labels-idx1-ubyte is truncated (12 bytes" in msg and "needs 28" in msg
    assert "delete the damaged files" in msg and "make data" in msg
    # the command line no longer says "ready"
    assert data.main(["mnist", "--root", str(root)]) == 1
    assert "truncated" in capsys.readouterr().err


def test_genuine_mnist_sizes_pass_the_header_check(tmp_path):
    """The check accepts exactly the genuine sizes listed in ../shared/data/SOURCES.md."""
    header = {"train-images-idx3-ubyte": (2051, [60000, 28, 28], 47040016),
              "t10k-labels-idx1-ubyte": (2049, [10000], 10008)}
    for name, (magic, dims, size) in header.items():
        path = tmp_path / name
        with open(path, "wb") as f:
            f.write(struct.pack(">I" + "I" * len(dims), magic, *dims))
            f.truncate(size)  # sparse file of the genuine length
        assert data._idx_problem(path) is None
        _truncate(path, size - 1)
        assert data._idx_problem(path).startswith("truncated")
    (tmp_path / "junk").write_bytes(b"\x00" * 64)
    assert "not an MNIST idx file" in data._idx_problem(tmp_path / "junk")
