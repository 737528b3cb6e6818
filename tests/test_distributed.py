"""Several real processes on this machine (JAX's multi-process runtime, 2 CPU devices each), started by
``experiments/launch.py`` as a user would: data-parallel training, a sharded sweep, checkpoints written by
two processes, and a process killed mid-run."""

import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments import adding, launch
from experiments import sweep as sweep_experiment
from rnnjax.checkpoint import Checkpointer
from rnnjax.train import read_metrics
from tests.helpers import saved_steps

ROOT = pathlib.Path(__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def launched(*args, timeout=300):
    cmd = [sys.executable, "-m", "experiments.launch", "--processes=2", "--devices=2", "--", *args]
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def test_data_parallel_training_over_two_processes_equals_one_process_and_resumes(tmp_path):
    opts = dict(batch=8, steps=5, checkpoint_every=2, eval_every=5)
    cfg = adding.Config(**{**adding.QUICK, **opts}, data_parallel=True)
    adding.run(cfg, tmp_path / "one", progress=False)  # one process, one device: the same global batches
    flags = [f"--{k}={v}" for k, v in opts.items()]
    launched("experiments.adding", "--quick", *flags, "--data_parallel=true", f"--out={tmp_path / 'two'}")
    one, two = read_metrics(tmp_path / "one" / "metrics.jsonl"), read_metrics(tmp_path / "two" / "metrics.jsonl")
    assert [r["step"] for r in two] == [r["step"] for r in one] == [5]  # written once, by process 0
    np.testing.assert_allclose(two[-1]["loss"], one[-1]["loss"], rtol=1e-5)
    np.testing.assert_allclose(two[-1]["eval_mse"], one[-1]["eval_mse"], rtol=1e-5)
    template = adding.build(dataclasses.replace(cfg, data_parallel=False))[0]
    params = lambda run: Checkpointer(tmp_path / run / "checkpoints").restore(template)[0].params  # noqa: E731
    first = params("two")
    # atol 1e-5: a thousandth of one RMSProp step at lr 1e-2 (the all-reduce sums in another order, and
    # RMSProp divides by the root of a small second moment, which magnifies the last bit)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), first, params("one"))
    # the checkpoint at step 4, written by both processes, resumes to the same parameters; the state is
    # replicated, so one process (one device) resumes it too (the 2-process rerun: the test below)
    ckpts = tmp_path / "two" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir() if p.name.isdigit()) == ["4", "5"]
    subprocess.run(["rm", "-r", str(ckpts / "5")], check=True)
    adding.run(cfg, tmp_path / "two", progress=False)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), params("two"), first)


def test_a_sweep_over_two_processes_equals_one_process(tmp_path):
    sweep_experiment.run(sweep_experiment.Config(**sweep_experiment.QUICK), out=tmp_path / "one", progress=False)
    launched("experiments.sweep", "--quick", "--shard=true", f"--out={tmp_path / 'two'}")
    for name in ("rnn", "lstm"):
        read = lambda run: np.genfromtxt(tmp_path / run / f"{name}.csv", delimiter=",", skip_header=1)  # noqa: E731
        one, two = read("one"), read("two")
        assert one.shape == two.shape == (4, 7)
        np.testing.assert_allclose(two, one, rtol=1e-5)


def workers(out):
    """{process id: pid} of the workers whose command line names ``out``."""
    found = {}
    for proc in pathlib.Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in cmd]
        if "worker" in args and f"--out={out}" in args:
            found[int(next(a for a in args if a.startswith("--process_id=")).split("=")[1])] = int(proc.name)
    return found


def test_a_killed_process_stops_the_others_with_a_message_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["experiments.adding", "--quick", "--batch=8", "--steps=400", "--checkpoint_every=20", "--eval_every=0",
            "--data_parallel=true", f"--out={out}"]
    cmd = [sys.executable, "-m", "experiments.launch", "--processes=2", "--devices=2", "--grace=5", "--", *args]
    launcher = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not saved_steps(out / "checkpoints"):
            assert launcher.poll() is None, launcher.communicate()[1][-3000:]
            time.sleep(0.2)
        pids = workers(out)
        assert sorted(pids) == [0, 1]
        os.kill(pids[1], signal.SIGKILL)
        _, err = launcher.communicate(timeout=60)  # bounded: no hang in a collective
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert "process 1 of 2 was killed by signal 9; stopping the others" in err
    assert workers(out) == {}  # process 0 is gone too
    saved = Checkpointer(out / "checkpoints").latest_step()
    assert saved is not None and saved < 400
    result = launched(*args)  # the same command again: both resume from the last checkpoint and finish
    assert f"at step {saved}" in result.stdout
    assert read_metrics(out / "metrics.jsonl")[-1]["step"] == 400


def test_cluster_commands_and_errors(capsys):
    launch.main(["--hosts=node0,node1", "--port=4321", "--", "experiments.sweep", "--quick"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("ssh node0 ") and lines[1].startswith("ssh node1 ")
    for i, line in enumerate(lines):
        assert f"--coordinator=node0:4321 --processes=2 --process_id={i} -- experiments.sweep --quick" in line
    launch.main(["--slurm", "--", "experiments.sweep", "--quick"])
    srun = capsys.readouterr().out.strip()
    assert srun.startswith("srun ") and "experiments.launch worker -- experiments.sweep --quick" in srun
    for bad, message in ((["--processes=2"], "give the experiment after --"),
                         (["--", "os", "-c"], "after -- comes an experiment module"),
                         (["--processes=0", "--", "experiments.sweep"], "--processes"),
                         (["--hosts=", "--", "experiments.sweep"], "--hosts needs at least one host")):
        with pytest.raises(SystemExit) as err:
            launch.main(bad)
        assert err.value.code == 2 and message in err.value.message
