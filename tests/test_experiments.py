"""Every experiment runs in its quick configuration, and the command line rejects bad keys and values."""

import dataclasses
import json
import math
import subprocess
import sys
import pathlib

import pytest

from experiments import _cli, adding, copy_memory

ROOT = pathlib.Path(__file__).parents[1]


def test_adding_quick_run_learns(tmp_path):
    _, history = adding.run(adding.Config(**adding.QUICK), out=tmp_path, progress=False)
    assert history[-1]["eval_mse"] < 0.9 * history[1]["eval_mse"]
    assert json.loads((tmp_path / "metrics.json").read_text())["step"] == adding.QUICK["steps"]
    assert (tmp_path / "loss_curve.png").exists()


def test_copy_quick_run_learns(tmp_path):
    _, history = copy_memory.run(copy_memory.Config(**copy_memory.QUICK), out=tmp_path, progress=False)
    assert history[-1]["eval_xent"] < history[1]["eval_xent"]
    assert (tmp_path / "metrics.jsonl").exists()


def test_learning_rate_schedules_hold_their_stated_values(tmp_path):
    from experiments import _common

    cfg = adding.Config(**{**adding.QUICK, "learning_rate": 0.01, "steps": 1000})
    assert _common.learning_rate(dataclasses.replace(cfg, schedule="constant")) == 0.01
    cosine = _common.learning_rate(dataclasses.replace(cfg, schedule="cosine"))
    stable = _common.learning_rate(dataclasses.replace(cfg, schedule="stable_decay"))
    # cosine: 0.01 -> 0.001 over the 1000 steps, halfway (0.01 + 0.001) / 2; stable_decay: 0.01 until step
    # 800, then the same cosine over the last 200 steps
    for step, want_cosine, want_stable in [(0, 0.01, 0.01), (500, 0.0055, 0.01), (800, 0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(0.8 * math.pi))), 0.01),
                                           (900, 0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(0.9 * math.pi))), 0.0055), (1000, 0.001, 0.001)]:
        assert math.isclose(float(cosine(step)), want_cosine, rel_tol=1e-5), step
        assert math.isclose(float(stable(step)), want_stable, rel_tol=1e-5), step
    # and training follows it: the learning rate the run logs
    run = dataclasses.replace(cfg, schedule="stable_decay", steps=100, eval_every=50, checkpoint_every=50)
    adding.run(run, out=tmp_path, progress=False)
    logged = {r["step"]: r["learning_rate"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())}
    schedule = _common.learning_rate(run)  # over 100 steps: constant until 80, a tenth at 100
    assert math.isclose(logged[50], 0.01, rel_tol=1e-6)
    assert any(math.isclose(logged[100], float(schedule(k)), rel_tol=1e-5) for k in (99, 100)) and logged[100] < 0.0011


def _parsed(argv):
    """The config and folder ``_cli.main`` would hand the adding problem's ``run``."""
    return _cli.main(adding.Config, adding.QUICK, lambda cfg, out: (cfg, out), argv)


def test_cli_parses_types_and_quick():
    cfg, out = _parsed(["--quick", "--cell=gru", "--learning_rate", "0.5", "--out=/tmp/x", "--fast=false"])
    assert cfg.cell == "gru" and cfg.learning_rate == 0.5 and cfg.length == adding.QUICK["length"] and cfg.fast is False
    assert str(out) == "/tmp/x"
    cfg, out = _parsed(["--clip-threshold", "2", "--fast"])  # dashes for underscores; a bool option alone is true
    assert cfg.clip_threshold == 2.0 and cfg.fast is True and cfg.length == adding.Config().length and out is None


@pytest.mark.parametrize("argv,message", [
    (["--lenght=5"], "unrecognized arguments: --lenght=5"),
    (["--learn=0.1"], "unrecognized arguments: --learn=0.1"),  # no silent prefix matching
    (["--steps=many"], "argument --steps: expected an integer, got 'many'"),
    (["--fast=maybe"], "argument --fast: expected true or false, got 'maybe'"),
    (["--cell=transformer"], "unknown cell 'transformer'"),
    (["stray"], "unrecognized arguments: stray"),
])
def test_cli_rejects_unknown_keys_and_bad_values_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        _parsed(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err


def test_module_entry_point_runs_as_documented(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.copy_memory", "--quick", "--steps=20", f"--out={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert "final test cross-entropy" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "experiments.adding", "--colour=red"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr == (
        "error: unrecognized arguments: --colour=red (see python -m experiments.adding --help)\n")


def test_gradient_flow_quick_run_draws_its_figures(tmp_path):
    from experiments import gradient_flow

    results = gradient_flow.run(gradient_flow.Config(**gradient_flow.QUICK), out=tmp_path)
    for name in ["hidden_grad_norms.png", "exploding.png", "truncation.png", "ratios.json"]:
        assert (tmp_path / name).stat().st_size > 0
    assert set(results["ratios"]) == set(gradient_flow.FIGURE_CELLS)
    unclipped = max(r["grad_norm"] for r in results["exploding"]["no clipping"])
    clipped = max(r["grad_norm"] for r in results["exploding"]["clipped at 1"])
    assert unclipped > 100 * clipped  # the unclipped run's gradient explodes
    assert results["reach"] == {10: 10, "full": gradient_flow.QUICK["length"]}


@pytest.mark.parametrize("cell", ["min_gru", "min_lstm", "lru"])
def test_linear_cells_are_a_config_choice_of_the_adding_problem(tmp_path, cell):
    cfg = adding.Config(**{**adding.QUICK, "steps": 200}, cell=cell)
    _, history = adding.run(cfg, out=None, progress=False)
    assert history[-1]["eval_mse"] < 0.9 * history[1]["eval_mse"]


def test_linear_cells_in_sequential_mnist_and_the_char_lm(tmp_path):
    from experiments import char_lm, seq_mnist

    cfg = seq_mnist.Config(**{**seq_mnist.QUICK, "steps": 3, "eval_every": 3, "train_subset": 64}, cell="lru",
                           variant="pixel")
    state, _, test = seq_mnist.run(cfg, out=tmp_path, progress=False)
    norms = json.loads((tmp_path / "grad_norms.json").read_text())
    assert int(state.step) == 3 and 0 <= test <= 1 and len(norms["init"]) == 784 and norms["trained"][-1] > 0
    cfg = char_lm.Config(**{**char_lm.QUICK, "steps": 30}, cell="min_lstm")
    result = char_lm.run(cfg, out=tmp_path / "lm", progress=False)
    assert result["test_nats_per_char"] < math.log(31)  # better than uniform over the quick vocabulary


def test_unknown_cells_are_refused_by_every_experiment():
    from experiments import char_lm

    with pytest.raises(ValueError, match="unknown cell 'mingru'.*min_gru"):
        adding.build(adding.Config(cell="mingru"))
    with pytest.raises(ValueError, match="unknown cell 'mingru'"):
        char_lm.build(char_lm.Config(**char_lm.QUICK, cell="mingru"), None)


@pytest.mark.parametrize("arg,message", [
    ("--steps=0", "steps must be at least 1, got 0"),
    ("--steps=-5", "steps must be at least 1, got -5"),
    ("--hidden=0", "hidden must be at least 1"),
    ("--learning_rate=-0.1", "learning_rate must be a positive number, got -0.1"),
    ("--learning_rate=nan", "learning_rate must be a finite number, got nan"),
    ("--clip_threshold=0", "clip_threshold must be a positive number"),
    ("--eval_every=-1", "eval_every must be at least 0"),
    ("--batch=0", "batch must be at least 1"),
])
def test_values_that_make_training_meaningless_are_refused_before_any_work(arg, message, tmp_path, capsys):
    """Issue 18: --steps <= 0, a negative learning rate and --clip_threshold=0 were accepted and exited 0."""
    with pytest.raises(SystemExit) as exit_:
        adding.main(["--quick", f"--out={tmp_path / 'run'}", arg])
    assert exit_.value.code == 2
    assert f"error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    adding.Config(clip="none", clip_threshold=0.0)  # no clipping: the threshold is not used


def test_seeds_run_in_their_own_folders_and_are_summarised(tmp_path, capsys):
    """Issue 19: a result is several seeds' median and spread; each seed resumes on its own."""
    argv = ["--quick", "--cell=chrono_lstm", "--steps=20", "--eval_every=10", "--checkpoint_every=10", "--seeds=2", f"--out={tmp_path}"]
    summary = adding.main(argv)
    values = [json.loads((tmp_path / f"seed-{k}" / "metrics.json").read_text())["eval_mse"] for k in (0, 1)]
    assert [r["seed"] for r in summary["seeds"]] == [0, 1] and [r["eval_mse"] for r in summary["seeds"]] == values
    assert values[0] != values[1] and summary["median"] == pytest.approx(sum(values) / 2)
    assert summary["min"] == min(values) and summary["fraction_below_0.01"] == 0.0
    assert json.loads((tmp_path / "seed-1" / "config.json").read_text())["seed"] == 1
    assert json.loads((tmp_path / "seeds.json").read_text()) == summary
    capsys.readouterr()
    assert adding.main(argv) == summary | {"seeds": [r | {"wall_s": pytest.approx(r["wall_s"], abs=1e9)} for r in summary["seeds"]]}
    assert capsys.readouterr().out.count("resumed from") == 2  # finished seeds are not trained again
    with pytest.raises(ValueError, match="seeds=2 needs an output folder"):
        adding.run(adding.Config(**adding.QUICK, seeds=2))
