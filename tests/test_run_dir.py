"""The run-folder contract (rnnjax.run_dir), with real processes where the issue asks for them (issue 18)."""

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import pytest

import rnnjax
from rnnjax.checkpoint import Checkpointer
from rnnjax.run_dir import RunDir, RunDirError, read_metrics
from tests.helpers import wait_for_checkpoint
from tests.test_train import batch_at, regression_setup

ROOT = pathlib.Path(__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def adding(out, *extra, steps=200):
    return [sys.executable, "-m", "experiments.adding", "--quick", f"--out={out}", f"--steps={steps}",
            "--checkpoint_every=25", *extra]


def test_a_second_run_into_a_busy_folder_is_refused_and_the_first_finishes_intact(tmp_path):
    """Issue 18: two runs into one --out both finished, rewriting each other's checkpoints and
    interleaving metrics.jsonl."""
    out = tmp_path / "run"
    first = subprocess.Popen(adding(out, steps=3000), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(first, out / "checkpoints", 25)
    second = subprocess.run(adding(out, steps=3000), cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert second.returncode == 2
    assert f"error: output folder {str(out)!r} is in use by another run (process {first.pid})" in second.stderr
    assert "Traceback" not in second.stderr
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == 3000


def test_resume_with_a_changed_config_is_refused_with_the_keys_named(tmp_path):
    """Issue 18: changing the learning rate or seed and rerunning into the same --out continued silently."""
    out = tmp_path / "run"
    subprocess.run(adding(out, steps=50), cwd=ROOT, env=ENV, check=True, capture_output=True)
    saved = (out / "config.json").read_text()
    changed = subprocess.run(adding(out, "--learning_rate=0.5", "--seed=3", steps=50), cwd=ROOT, env=ENV,
                             capture_output=True, text=True)
    assert changed.returncode == 2 and "Traceback" not in changed.stderr
    assert "another config (learning_rate: saved 0.01, now 0.5, seed: saved 0, now 3)" in changed.stderr
    assert (out / "config.json").read_text() == saved


def test_a_finished_constant_rate_run_continues_for_longer_as_if_it_had_never_stopped(tmp_path):
    """Rerunning a finished run with a larger ``steps`` continues it from its last checkpoint (the same
    records as one run of that length); a smaller ``steps``, or a decaying schedule, which ``steps``
    stretches, is refused. (In one process: the command line's refusal is the test above.)"""
    from experiments import adding

    full, grown = tmp_path / "full", tmp_path / "grown"
    cfg = adding.Config(**{**adding.QUICK, "schedule": "constant", "checkpoint_every": 50, "eval_every": 50})
    adding.run(dataclasses.replace(cfg, steps=150), full, progress=False)
    adding.run(dataclasses.replace(cfg, steps=100), grown, progress=False)
    adding.run(dataclasses.replace(cfg, steps=150), grown, progress=False)
    records, expected = read_metrics(grown / "metrics.jsonl"), read_metrics(full / "metrics.jsonl")
    assert [r["step"] for r in records] == [r["step"] for r in expected] and records[-1]["step"] == 150
    assert [r["loss"] for r in records] == [r["loss"] for r in expected]
    assert json.loads((grown / "config.json").read_text())["steps"] == 150  # a later resume compares with 150
    with pytest.raises(RunDirError, match=r"another config \(steps: saved 150, now 120\)"):
        adding.run(dataclasses.replace(cfg, steps=120), grown, progress=False)
    for schedule in ("cosine", "stable_decay"):
        decaying = tmp_path / schedule
        with RunDir(decaying, dataclasses.replace(cfg, schedule=schedule, steps=100)):
            pass
        with pytest.raises(RunDirError, match=r"another config \(steps: saved 100, now 150\)"):
            RunDir(decaying, dataclasses.replace(cfg, schedule=schedule, steps=150))


def test_sigterm_then_resume_logs_each_step_once_with_the_uninterrupted_values(tmp_path):
    """Issue 18: after an interruption, metrics.jsonl held the steps between the last checkpoint and the
    interruption twice."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(adding(full), cwd=ROOT, env=ENV, check=True, capture_output=True)
    proc = subprocess.Popen(adding(cut), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_checkpoint(proc, cut / "checkpoints", 50)
    time.sleep(0.3)  # let it log past the checkpoint
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    assert Checkpointer(cut / "checkpoints").latest_step() < 200
    subprocess.run(adding(cut), cwd=ROOT, env=ENV, check=True, capture_output=True)
    records = read_metrics(cut / "metrics.jsonl")
    expected = read_metrics(full / "metrics.jsonl")
    assert [r["step"] for r in records] == [r["step"] for r in expected]
    assert [r["loss"] for r in records] == [r["loss"] for r in expected]


def test_a_flipped_byte_in_a_checkpoint_is_refused_with_the_step_named(tmp_path):
    """Issue 18: a checkpoint whose bytes were flipped (same size) restored without a word, with wrong weights."""
    out = tmp_path / "run"
    subprocess.run(adding(out, steps=50), cwd=ROOT, env=ENV, check=True, capture_output=True)
    step = Checkpointer(out / "checkpoints").latest_step()
    data = [p for p in (out / "checkpoints" / str(step)).rglob("*") if p.is_file() and "/d/" in str(p)]
    target = max(data, key=lambda p: p.stat().st_size)
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    rerun = subprocess.run(adding(out, steps=50), cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert rerun.returncode == 1 and "Traceback" not in rerun.stderr
    assert f"error: checkpoint {step} in" in rerun.stderr and "fails its digest" in rerun.stderr
    assert f"Delete {out.absolute() / 'checkpoints' / str(step)}" in rerun.stderr


def test_a_torn_last_line_is_dropped_and_a_finished_rerun_keeps_metrics_json(tmp_path):
    """Issue 18: a torn last line of metrics.jsonl broke plotting on every rerun; rerunning a finished run
    replaced metrics.json with a stub."""
    _, params, loss_fn, opt = regression_setup()
    step = rnnjax.make_train_step(loss_fn, opt)
    fresh = lambda: rnnjax.init_state(params, opt, jax.random.key(1))  # noqa: E731
    rnnjax.fit(step, fresh(), batch_at, 20, out_dir=tmp_path, log_every=5, progress=False,
               eval_fn=lambda p: {"norm": sum(float((x**2).sum()) for x in jax.tree.leaves(p))})
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert {"loss", "grad_norm", "eval_norm"} <= set(summary)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 25, "lo')  # a write cut short
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [5, 10, 15, 20]
    rnnjax.fit(step, fresh(), batch_at, 20, out_dir=tmp_path, log_every=5, progress=False,
               eval_fn=lambda p: {"norm": 0.0})
    again = json.loads((tmp_path / "metrics.json").read_text())
    assert set(again) == set(summary) and again["loss"] == summary["loss"] and again["eval_norm"] == 0.0
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [5, 10, 15, 20]
    (tmp_path / "metrics.jsonl").write_text('{"step": 5}\nnot json\n{"step": 10}\n')
    with pytest.raises(ValueError, match="line 2 is not a JSON record"):
        read_metrics(tmp_path / "metrics.jsonl")


def test_the_lock_is_held_for_the_run_and_released_after(tmp_path):
    with RunDir(tmp_path, {"a": 1}):
        with pytest.raises(RunDirError, match=f"process {os.getpid()}"):
            RunDir(tmp_path, {"a": 1})
    with RunDir(tmp_path, {"a": 1}):  # released: the same config resumes
        pass
    with pytest.raises(RunDirError, match=r"another config \(a: saved 1, now 2, b: saved '\(absent\)', now 3\)"):
        RunDir(tmp_path, {"a": 2, "b": 3})
    with RunDir(tmp_path, {"a": 1}):  # a refused config released the lock too
        pass


def test_a_dataclass_config_resumes_a_run_saved_before_a_field_was_added_at_its_default(tmp_path):
    """Runs span sessions while the code grows: an option added since (at its default) keeps the run."""

    @dataclasses.dataclass(frozen=True)
    class Old:
        lr: float = 0.1
        sizes: tuple = (2, 3)

    @dataclasses.dataclass(frozen=True)
    class New(Old):
        t_max: int = 0

    with RunDir(tmp_path, Old()):
        pass
    assert json.loads((tmp_path / "config.json").read_text()) == {"lr": 0.1, "sizes": [2, 3]}
    with RunDir(tmp_path, New()):  # the new field at its default: the same run
        pass
    with pytest.raises(RunDirError, match=r"another config \(t_max: saved '\(absent\)', now 750\)"):
        RunDir(tmp_path, New(t_max=750))
    with pytest.raises(RunDirError, match=r"another config \(lr: saved 0.1, now 0.2\)"):
        RunDir(tmp_path, New(lr=0.2))
    with pytest.raises(RunDirError, match=r"t_max: saved '\(absent\)', now 0"):  # a dict has no defaults
        RunDir(tmp_path, dataclasses.asdict(New()))


def test_vocabularies_round_trip_and_a_swapped_one_is_refused(tmp_path):
    """One save/load of a trained run's vocabularies (issue 18: sentiment and translate each had their own)."""
    from rnnjax.datasets import tokens
    from rnnjax.run_dir import RunDirError, load_vocabs, save_vocabs

    chars, words = tokens.char_vocab("abcab"), tokens.vocab_from([["x", "y"], ["y"]])
    save_vocabs(tmp_path, {"chars": chars, "words": words}, fold=3)
    vocabs, info = load_vocabs(tmp_path, ["chars", "words"])
    assert vocabs == {"chars": chars, "words": words} and vocabs["chars"].chars and info["fold"] == 3
    other = tmp_path / "other"
    save_vocabs(other, {"words": tokens.vocab_from([["y", "x"], ["x"]])})
    (tmp_path / "vocab_words.json").write_bytes((other / "vocab_words.json").read_bytes())  # same size, other order
    with pytest.raises(RunDirError, match="vocabulary mismatch in .*vocab_words.json .* is not the vocabulary the model was trained with"):
        load_vocabs(tmp_path, ["words"])
    with pytest.raises(RunDirError, match="no trained model in .*: vocab_tags.json is missing"):
        load_vocabs(tmp_path, ["tags"])
