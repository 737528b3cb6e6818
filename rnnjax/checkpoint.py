"""Checkpoints of a training run with orbax-checkpoint: params, optimiser state, step, key, data position.

Each save is written to a temporary folder and renamed into place when complete (orbax's atomic commit),
so a run killed mid-save leaves the previous checkpoint intact; a folder that orbax never finalised is
ignored on restore. After the commit a SHA-256 digest of the checkpoint's files is written into its
folder (``rnnjax.sha256``) and checked before every restore, so bytes changed on disk (a flipped bit, a
file overwritten at the same size) are refused instead of restored as wrong weights.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import jax
import numpy as np

from rnnjax._ops import path_name


class CheckpointError(RuntimeError):
    """A checkpoint folder that cannot be read back into the expected state."""


def _to_saveable(state):
    # Typed PRNG keys are not arrays orbax can write; their raw uint32 data is.
    return state._replace(key=jax.random.key_data(state.key))


def _from_saved(state, template):
    impl = jax.random.key_impl(template.key)
    return state._replace(key=jax.random.wrap_key_data(state.key, impl=impl))


DIGEST = "rnnjax.sha256"


def _digest(folder: pathlib.Path) -> str:
    """SHA-256 over every file of a checkpoint folder (relative path and bytes), the digest file excepted."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DIGEST):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


class Checkpointer:
    """Saves and restores ``TrainState`` (see :mod:`rnnjax.train`) under ``directory``.

    Args:
      directory: the folder of numbered checkpoints; created if missing.
      max_to_keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory, max_to_keep: int = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = pathlib.Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True)
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, state, data_position: int) -> None:
        ocp = self._ocp
        step = int(state.step)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_to_saveable(state)),
            meta=ocp.args.JsonSave({"step": step, "data_position": int(data_position)}),
        )
        self._manager.save(step, args=args, force=True)  # several processes: all call it, orbax writes once
        self._manager.wait_until_finished()
        if jax.process_index() == 0:
            folder = self.directory / str(step)
            (folder / DIGEST).write_text(_digest(folder) + "\n")

    def _verify(self, step) -> None:
        folder = self.directory / str(step)
        saved = folder / DIGEST
        if saved.exists() and saved.read_text().strip() != _digest(folder):
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} fails its digest: its files changed after it was saved. "
                f"Delete {folder} to resume from the checkpoint before it, or start over in a new output folder"
            )

    def _check_shapes(self, step, target):
        try:
            saved = self._manager.item_metadata(step)["state"]
            saved = {leaf.name: leaf for leaf in jax.tree.leaves(saved)}
            if not saved:
                raise ValueError("no array metadata")
        except Exception as err:
            raise CheckpointError(
                f"cannot read checkpoint {step} in {self.directory}: its files are truncated or corrupt "
                f"({type(err).__name__}: {err})"
            ) from err
        expected = {path_name(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(target)}
        problems = [
            f"{name}: saved {tuple(saved[name].shape)} {saved[name].dtype}, expected {t.shape} {t.dtype}"
            for name, t in expected.items()
            if name in saved and (tuple(saved[name].shape) != t.shape or saved[name].dtype != t.dtype)
        ]
        problems += [f"{name}: missing" for name in expected if name not in saved]
        problems += [f"{name}: not in this model" for name in saved if name not in expected]
        if problems:
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} is from another model shape: " + "; ".join(problems[:5])
            )

    def restore(self, template, step: int | None = None):
        """The checkpoint at ``step`` (default: the newest) shaped like ``template``: ``(state, meta)``."""
        ocp = self._ocp
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        target = jax.tree.map(_spec, _to_saveable(template))
        self._verify(step)
        self._check_shapes(step, target)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()),
            )
        except Exception as err:  # orbax raises many types; all mean "these files cannot be read"
            raise CheckpointError(
                f"cannot restore checkpoint {step} from {self.directory}: its files are truncated or corrupt "
                f"({type(err).__name__}: {err})"
            ) from err
        state = restored["state"]
        return _from_saved(state, template), restored["meta"]


def _spec(a):
    """What to restore a leaf as: its shape, dtype and, for a JAX array, its layout over the devices (a
    state replicated over several processes is restored replicated)."""
    if isinstance(a, jax.Array):
        return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)
    return jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype)


def check_writable(directory) -> pathlib.Path:
    """Creates ``directory`` if needed and proves it can be written, or raises a clear ``OSError``."""
    path = pathlib.Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".rnnjax-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise OSError(f"output folder {str(path)!r} cannot be written: {err.strerror or err}") from err
    if not os.access(path, os.W_OK):
        raise OSError(f"output folder {str(path)!r} cannot be written")
    return path
