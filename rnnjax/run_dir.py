"""The run folder: what one training run owns on disk, and the rules that keep a run from going wrong quietly.

A run folder (``fit(out_dir=...)``) holds ``config.json``, ``metrics.jsonl``, ``metrics.json``,
``checkpoints/`` and ``loss_curve.png``. :class:`RunDir` enforces, for the life of a run:

- **one run at a time**: an exclusive lock (``fcntl.flock`` on ``.lock``, released by the kernel when the
  process dies however it dies); a second run into the same folder is refused, the first left intact;
- **the same run on resume**: the config is saved at the start and compared on every later start; a run
  with other settings is refused with the differing keys named, except a setting the config names as
  extendable (a run continued for longer: ``steps`` under a constant learning rate) raised, which the
  saved config then records;
- **each record once**: on a (re)start, ``metrics.jsonl`` is cut back to the step the run starts from, so
  the steps between the last checkpoint and an interruption are not logged twice; a torn last line (a
  write cut short) is dropped, here and by :func:`read_metrics`.

Checkpoints are verified against a digest written when they were saved (:mod:`rnnjax.checkpoint`).
:func:`start_over` empties a run folder under the same lock (the command lines' ``--fresh``);
:func:`save_vocabs` and :func:`load_vocabs` keep a trained run's vocabularies beside its checkpoints,
with fingerprints that catch a vocabulary changed or swapped after training; :func:`read_config` reads a
finished run's settings back.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import pathlib
import shutil

from rnnjax.checkpoint import check_writable
from rnnjax.datasets.tokens import Vocab


class RunDirError(RuntimeError):
    """A run folder that cannot be used as asked: in use by another run, holding a different run, or not
    holding the trained run (or the vocabularies) a command needs. The message names the folder and the way out."""


def _normalised(config: dict) -> dict:
    return json.loads(json.dumps(config))  # tuples become lists, as they read back from config.json


def _settings(config) -> tuple[dict, dict, tuple]:
    """``(settings, defaults, extendable)`` of a config: a dict has no defaults and nothing extendable; a
    dataclass instance gives its fields, the defaults of those that have one, and the names its
    ``extendable()`` method returns, if it has one."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
        extendable = tuple(config.extendable()) if hasattr(config, "extendable") else ()
        return _normalised(dataclasses.asdict(config)), _normalised(defaults), extendable
    return _normalised(config), {}, ()


def _write_atomically(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunDir:
    """Owns ``path`` for one run: takes the lock, then saves or checks ``config`` (a JSON-able dict, or a
    dataclass instance of JSON-able fields: an experiment's frozen ``Config``).

    A dataclass config resumes a run saved before a field was added to it when the field is at its default
    (the run was made with what the default does), so a run folder outlives a new option; a dict, or a new
    field set to another value, is compared as it is. A dataclass config may also have a method
    ``extendable()`` naming numeric settings that a resumed run may raise, and only raise: the number of
    updates of a run whose learning rate does not depend on it, so a finished run can be continued for
    longer (``config.json`` then records the new value, and a later resume compares with it).

    Use as a context manager, or call :meth:`close`. Raises :class:`RunDirError` (and holds nothing) when
    the folder is in use or holds a run with another config; ``OSError`` when it cannot be written.
    """

    def __init__(self, path, config=None, fresh: bool = False):
        """``fresh``: start over, deleting what a previous run left in the folder (see :func:`start_over`)."""
        self.path = check_writable(path)
        self._lock = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            holder = self._lock.read().strip()
            self._lock.close()
            raise RunDirError(
                f"output folder {str(self.path)!r} is in use by another run"
                + (f" (process {holder})" if holder else "")
                + "; wait for it to finish, or choose another output folder"
            ) from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(os.getpid()))
        self._lock.flush()
        try:
            if fresh:
                self._empty()
            if config is not None:
                self._check_config(*_settings(config))
        except BaseException:
            self.close()
            raise

    def _check_config(self, config: dict, defaults: dict, extendable: tuple = ()) -> None:
        path = self.path / "config.json"
        if not path.exists():
            _write_atomically(path, json.dumps(config, indent=2) + "\n")
            return
        saved = json.loads(path.read_text())
        missing = object()
        # a key the saved run lacks reads as its default: a field added since, which the run did not set
        differ = sorted(k for k in set(saved) | set(config) if saved.get(k, defaults.get(k, missing)) != config.get(k, missing))
        extended = [k for k in differ if k in extendable and k in saved and config.get(k, missing) is not missing
                    and config[k] > saved[k]]
        differ = [k for k in differ if k not in extended]
        if extended and not differ:  # the same run, continued for longer: the saved config says so from now on
            _write_atomically(path, json.dumps({**saved, **{k: config[k] for k in extended}}, indent=2) + "\n")
        if differ:
            detail = ", ".join(
                f"{k}: saved {saved.get(k, '(absent)')!r}, now {config.get(k, '(absent)')!r}" for k in differ
            )
            raise RunDirError(
                f"output folder {str(self.path)!r} holds a run with another config ({detail}); rerun with the "
                "saved settings to resume it, or choose another output folder (or delete this one) to start over"
            )

    def _empty(self) -> None:
        entries = [p for p in self.path.iterdir() if p.name != ".lock"]
        if entries and not (self.path / "config.json").exists():
            raise RunDirError(
                f"output folder {str(self.path)!r} is not a run folder (it holds files but no config.json), so "
                "starting over would delete files no run wrote; choose another output folder"
            )
        for entry in entries:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()

    def cut_metrics(self, step: int) -> list[dict]:
        """Keeps the records of ``metrics.jsonl`` up to ``step`` (the step this run starts from); returns them."""
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= step]
        _write_atomically(path, "".join(json.dumps(r) + "\n" for r in kept))
        return kept

    def write_summary(self, last: dict) -> None:
        """``metrics.json``: the last record, merged over what is there, so a rerun never leaves less."""
        path = self.path / "metrics.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        _write_atomically(path, json.dumps({**old, **last}, indent=2) + "\n")

    def close(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_metrics(path) -> list[dict]:
    """The records of a ``metrics.jsonl``, one dict per line; a torn last line (a cut-short write) is dropped."""
    lines = [line for line in pathlib.Path(path).read_text().splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not a JSON record: {line[:80]!r}") from None
    return records


def start_over(path) -> None:
    """Deletes everything in the run folder ``path`` (under its lock), so the next run starts from step 0.

    Refuses a folder in use by a run, and a non-empty folder without ``config.json`` (not a run folder).
    """
    with RunDir(path, fresh=True):
        pass


def read_config(path) -> dict:
    """The settings saved in run folder ``path`` (``config.json``), or :class:`RunDirError` saying it holds none."""
    file = pathlib.Path(path) / "config.json"
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        raise RunDirError(f"no trained run in {str(path)!r}: {file.name} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(f"{file} is not a run's config (not JSON: {err})") from None


def save_vocabs(path, vocabs: dict[str, Vocab], **info) -> None:
    """Writes ``vocab_NAME.json`` (the tokens) for each vocabulary and ``model.json`` with their sizes and
    fingerprints (and ``info``), so a vocabulary changed or swapped after training is caught on loading."""
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    record = dict(info)
    for name, vocab in vocabs.items():
        _write_atomically(path / f"vocab_{name}.json", json.dumps({"tokens": list(vocab.tokens), "chars": vocab.chars}) + "\n")
        record |= {f"{name}_vocab_size": vocab.size, f"{name}_vocab_sha256": vocab.fingerprint()}
    _write_atomically(path / "model.json", json.dumps(record, indent=2) + "\n")


def load_vocabs(path, names) -> tuple[dict[str, Vocab], dict]:
    """``({name: Vocab}, model.json)`` as :func:`save_vocabs` wrote them; :class:`RunDirError` when a file is
    missing or a vocabulary is not the one the model was trained with."""
    path = pathlib.Path(path)
    try:
        info = json.loads((path / "model.json").read_text())
        saved = {name: json.loads((path / f"vocab_{name}.json").read_text()) for name in names}
    except FileNotFoundError as err:
        raise RunDirError(f"no trained model in {str(path)!r}: {pathlib.Path(err.filename).name} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(f"a vocabulary file in {str(path)!r} is not JSON ({err})") from None
    vocabs = {}
    for name, record in saved.items():
        vocab = Vocab(tuple(record.get("tokens", ())), bool(record.get("chars", False)))
        expected = info.get(f"{name}_vocab_sha256", "(none recorded)")
        if vocab.fingerprint() != expected:
            raise RunDirError(
                f"vocabulary mismatch in {str(path)!r}: vocab_{name}.json ({vocab.size} tokens, sha256 "
                f"{vocab.fingerprint()[:12]}) is not the vocabulary the model was trained with "
                f"({info.get(f'{name}_vocab_size')} tokens, sha256 {expected[:12]})"
            )
        vocabs[name] = vocab
    return vocabs, info
