"""German–English sentence pairs from the Ding dictionary (Debian package ``trans-de-en``), and their split.

The Ding dictionary of TU Chemnitz (GPL-2+) ships as ``/usr/share/trans/de-en`` inside the Debian package
``trans-de-en``. The package is fetched with the package client itself (``apt-get download``, no root)
into the cache folder (``$RNNJAX_DATA``, default ``~/.cache/rnnjax``), its sha256 checked against a pinned
value, and the dictionary read straight out of the archive: a ``.deb`` is an ``ar`` archive whose
``data.tar.*`` member holds the files, so nothing is unpacked to disk and nothing from it runs.

Each dictionary line is ``German :: English``; sub-entries are split by `` | `` and alternatives by ``;``.
Example sentences are the sub-entries whose both sides end in ``.``, ``!`` or ``?``; the first alternative
of each side is kept, and each German sentence once (its first translation), which leaves about 19,000
pairs ("Er hat sich den Arm ausgerenkt." → "He dislocated his arm.").
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import lzma
import pathlib
import shutil
import subprocess
import tarfile
import tempfile

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


def parse_pairs(dictionary: str) -> list[tuple[str, str]]:
    """Example-sentence pairs ``(German, English)`` of Ding-format lines, each German sentence once."""
    pairs: dict[str, str] = {}
    for line in dictionary.splitlines():
        if line.startswith("#") or " :: " not in line:
            continue
        german, english = line.split(" :: ", 1)
        de_parts, en_parts = german.split(" | "), english.split(" | ")
        if len(de_parts) != len(en_parts):
            continue
        for de, en in zip(de_parts, en_parts):
            de, en = _first(de), _first(en)
            if de.endswith(_END) and en.endswith(_END) and de not in pairs:
                pairs[de] = en
    return list(pairs.items())


def split(pairs, every: int = 20) -> dict[str, list[tuple[str, str]]]:
    """Deterministic split by the sha256 of the German sentence: residue 0 (mod ``every``) → validation,
    1 → test, the rest → train (5% / 5% / 90% for ``every = 20``); the file's order does not matter."""
    out = {"train": [], "validation": [], "test": []}
    for de, en in pairs:
        r = int.from_bytes(hashlib.sha256(de.encode()).digest()[:8], "big") % every
        out["validation" if r == 0 else "test" if r == 1 else "train"].append((de, en))
    return out


def german_english(cache=None) -> dict[str, list[tuple[str, str]]]:
    """The Ding example sentences as ``{"train", "validation", "test"}`` lists of ``(German, English)``."""
    pairs = parse_pairs(read_member(DING, cache))
    if not pairs:
        raise DataError(f"no sentence pairs in {_where(DING, DING.member)}")
    return split(pairs)
