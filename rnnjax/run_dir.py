"""The run folder: what one training run owns on disk, and the rules that keep a run from going wrong quietly.

A run folder (``fit(out_dir=...)``) holds ``config.json``, ``metrics.jsonl``, ``metrics.json``,
``checkpoints/`` and ``loss_curve.png``. :class:`RunDir` enforces, for the life of a run:

- **one run at a time**: an exclusive lock (``fcntl.flock`` on ``.lock``, released by the kernel when the
  process dies however it dies); a second run into the same folder is refused, the first left intact;
- **the same run on resume**: the config is saved at the start and compared on every later start; a run
  with other settings is refused with the differing keys named;
- **each record once**: on a (re)start, ``metrics.jsonl`` is cut back to the step the run starts from, so
  the steps between the last checkpoint and an interruption are not logged twice; a torn last line (a
  write cut short) is dropped, here and by :func:`read_metrics`.

Checkpoints are verified against a digest written when they were saved (:mod:`rnnjax.checkpoint`).
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib

from rnnjax.checkpoint import check_writable


class RunDirError(RuntimeError):
    """A run folder that this run must not write: in use by another run, or holding a different run."""


def _normalised(config: dict) -> dict:
    return json.loads(json.dumps(config))  # tuples become lists, as they read back from config.json


def _write_atomically(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunDir:
    """Owns ``path`` for one run: takes the lock, then saves or checks ``config`` (a JSON-able dict).

    Use as a context manager, or call :meth:`close`. Raises :class:`RunDirError` (and holds nothing) when
    the folder is in use or holds a run with another config; ``OSError`` when it cannot be written.
    """

    def __init__(self, path, config: dict | None = None):
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
            if config is not None:
                self._check_config(_normalised(config))
        except BaseException:
            self.close()
            raise

    def _check_config(self, config: dict) -> None:
        path = self.path / "config.json"
        if not path.exists():
            _write_atomically(path, json.dumps(config, indent=2) + "\n")
            return
        saved = json.loads(path.read_text())
        missing = object()
        differ = sorted(k for k in set(saved) | set(config) if saved.get(k, missing) != config.get(k, missing))
        if differ:
            detail = ", ".join(
                f"{k}: saved {saved.get(k, '(absent)')!r}, now {config.get(k, '(absent)')!r}" for k in differ
            )
            raise RunDirError(
                f"output folder {str(self.path)!r} holds a run with another config ({detail}); rerun with the "
                "saved settings to resume it, or choose another output folder (or delete this one) to start over"
            )

    def cut_metrics(self, step: int) -> None:
        """Keeps the records of ``metrics.jsonl`` up to ``step`` (the step this run starts from)."""
        path = self.path / "metrics.jsonl"
        if path.exists():
            kept = [r for r in read_metrics(path) if r.get("step", 0) <= step]
            _write_atomically(path, "".join(json.dumps(r) + "\n" for r in kept))

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
