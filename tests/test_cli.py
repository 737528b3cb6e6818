"""The experiments' command line (experiments/_cli.py on argparse): --help everywhere, a user's mistake is one
line ``error: …`` with exit status 2 and no traceback, ``--fresh`` starts a run folder over (issue 18)."""

import importlib
import json
import pathlib
import re
import subprocess
import sys

import pytest

from experiments import _cli, _common, adding, char_lm, sentiment, sweep, translate
from rnnjax.datasets import text

ROOT = pathlib.Path(__file__).parents[1]

COMMANDS = [
    ("adding", []), ("copy_memory", []), ("char_lm", []), ("char_lm", ["sample"]), ("word_lm", []), ("sentiment", []),
    ("sentiment", ["predict"]), ("translate", []), ("translate", ["translate"]), ("translate", ["compare"]), ("translate", ["ensemble"]), ("sweep", []), ("sweep", ["bench"]),
    ("seq_mnist", []), ("seq_mnist", ["figure"]), ("gradient_flow", []), ("benchmark", []), ("benchmark", ["profile"]),
    ("benchmark", ["linear"]), ("benchmark", ["memory"]), ("demo", []),
]


@pytest.mark.parametrize("name,command", COMMANDS)
def test_every_experiment_and_subcommand_has_help(name, command, capsys):
    """Issue 18: ``--help`` on every experiment and subcommand (five subcommands had none)."""
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(f"experiments.{name}").main([*command, "--help"])
    printed = capsys.readouterr().out
    assert exit_.value.code == 0 and printed.startswith(f"usage: python -m experiments.{name} {' '.join(command)}".rstrip())
    assert "-h, --help" in printed


def _error(capsys, main, argv, code=2):
    capsys.readouterr()  # what came before (progress bars of an earlier run)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == code and err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("module,argv,message", [
    (char_lm, ["sample", "--length=-5"], "argument --length: expected an integer >= 1, got '-5'"),
    (char_lm, ["sample", "--temperature=-1"], "argument --temperature: expected a finite number >= 0 (0: greedy), got '-1'"),
    (char_lm, ["sample", "--temperature=nan"], "argument --temperature: expected a finite number >= 0"),
    (char_lm, ["--temperature=-0.5"], "temperature must be >= 0, got -0.5"),
    (char_lm, ["--sample_length=0"], "sample_length must be at least 1"),
    (sentiment, ["--embed_dropout=1.0"], "embed_dropout must be in [0, 1), got 1.0"),
    (sentiment, ["--cell=lru"], None),  # the classifier reads outputs: every cell of the table is allowed
    (translate, ["--beam=0"], "beam must be at least 1, got 0"),
    (translate, ["--cell=lru"], "unknown cell 'lru'; expected one of ['gru', 'irnn', 'lstm', 'rnn']"),
    (translate, ["--max_len=1"], "max_len must be at least 2"),
    (translate, ["translate", "x", "--beam=0"], "argument --beam: expected an integer >= 1, got '0'"),
    (sweep, ["--cells=lstm,tcn"], "unknown cells ['tcn']"),
    (sweep, ["--learning_rates=fast"], "learning_rates must be comma-separated numbers"),
    (adding, ["--fresh"], "--fresh starts a run folder over, but this run has none: give --out DIR"),
    (adding, ["--seed=-3"], "seed must be at least 0, got -3"),
    (adding, ["--schedule=linear"], "unknown schedule 'linear'; expected one of ['constant', 'cosine', 'stable_decay']"),
    (adding, ["--average=1.5"], "average: the decay must be in [0, 1] (1: a uniform average), got 1.5"),
    (char_lm, ["--average=-0.5"], "average must be >= 0, got -0.5"),
    (adding, ["--clip=value2"], "unknown clip 'value2'; expected one of ['global_norm', 'value', 'none']"),
    (char_lm, ["--corpus=wikitext"], "unknown corpus 'wikitext'; expected one of ['shakespeare', 'news', 'quick']"),
    (sentiment, ["--pooling=mean+median"], "unknown pooling 'mean+median'"),
    (char_lm, ["sampel"], "argument command: invalid choice: 'sampel' (choose from 'sample')"),
])
def test_bad_values_are_one_line_errors_naming_the_field(module, argv, message, capsys, monkeypatch):
    """Issue 18: a negative or NaN temperature sampled greedily; --length=-5 and other values gave tracebacks."""
    monkeypatch.setattr(module, "run", lambda cfg, out=None: "ran")
    if message is None:
        assert module.main(argv) == "ran"
        return
    assert message in _error(capsys, module.main, argv)


def test_a_value_only_the_data_can_refuse_is_one_line_too(tmp_path, capsys):
    """A sequence length longer than the text is found when the text is read: still one line, status 2."""
    err = _error(capsys, char_lm.main, ["--quick", "--length=100000", f"--out={tmp_path}"])
    assert "is too short for batch 4 x length 100000" in err


def test_sample_on_an_empty_or_foreign_run_folder_says_so(tmp_path, capsys):
    """Issue 18: ``sample`` on an empty or another experiment's run folder was a raw traceback."""
    err = _error(capsys, char_lm.main, ["sample", "--out", str(tmp_path)])
    assert f"no trained run in '{tmp_path}': config.json is missing (train with: python -m experiments.char_lm" in err
    (tmp_path / "config.json").write_text(json.dumps({"cells": "lstm", "learning_rates": "0.1", "seed": 0}))
    err = _error(capsys, char_lm.main, ["sample", "--out", str(tmp_path)])
    assert "holds a run of another experiment, not experiments.char_lm (its config.json has cells, learning_rates)" in err
    (tmp_path / "config.json").write_text("{not json")
    assert "is not a run's config (not JSON" in _error(capsys, char_lm.main, ["sample", "--out", str(tmp_path)])


def test_fresh_starts_a_run_folder_over(tmp_path, capsys):
    """Issue 18: a different config is refused on resume "unless the user asks to start over" (--fresh)."""
    out = tmp_path / "run"
    argv = ["--quick", "--steps=20", "--eval_every=10", "--checkpoint_every=10", f"--out={out}"]
    adding.main(argv)
    err = _error(capsys, adding.main, [*argv, "--learning_rate=0.02"])
    assert "holds a run with another config (learning_rate: saved 0.01, now 0.02)" in err
    adding.main([*argv, "--learning_rate=0.02", "--fresh"])
    assert json.loads((out / "config.json").read_text())["learning_rate"] == 0.02
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 20  # each step once: the old records went with the old run


def test_fresh_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    """--fresh deletes only a run folder's files: a folder of other files is left alone."""
    (tmp_path / "thesis.tex").write_text("years of work")
    err = _error(capsys, adding.main, ["--quick", "--steps=2", f"--out={tmp_path}", "--fresh"])
    assert "is not a run folder (it holds files but no config.json)" in err
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_an_out_folder_that_cannot_be_encoded_is_refused_in_one_line(tmp_path):
    """Issue 18: an ``--out`` with undecodable bytes failed late, with a traceback."""
    result = subprocess.run([sys.executable, "-m", "experiments.adding", "--quick", b"--out=" + bytes(tmp_path) + b"/run\xff"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("error: argument --out: ") and "is not a name that can be written" in result.stderr
    assert result.stderr.count("\n") == 1 and not list(tmp_path.iterdir())


def test_a_read_only_data_cache_is_refused_before_the_download(tmp_path, monkeypatch):
    """Issue 18: a read-only data cache gave a raw PermissionError after the whole download."""
    monkeypatch.setattr(text.os, "access", lambda path, mode: False)
    monkeypatch.setattr(text.subprocess, "run", lambda *a, **k: pytest.fail("downloaded into a folder it cannot write"))
    with pytest.raises(text.DataError, match=r"the cache folder .* cannot be written, so source 'shakespeare' .* \$RNNJAX_DATA"):
        text.fetch("shakespeare", cache=tmp_path)


def test_the_sweep_holds_its_run_folder(tmp_path, capsys):
    """Issue 18: the sweep wrote config.json itself, so a rerun with other settings mixed two sweeps' files."""
    (tmp_path / "config.json").write_text(json.dumps({**_cli.config_from(sweep.Config, sweep.QUICK).__dict__, "hidden": 99}))
    err = _error(capsys, sweep.main, ["--quick", f"--out={tmp_path}"])
    assert "holds a run with another config (hidden: saved 99, now 8)" in err


def test_one_cell_table():
    """Issue 18: six copies of the cell table; the experiments now build every cell from ``_common.CELLS``."""
    sources = "".join(p.read_text() for p in (ROOT / "experiments").glob("*.py") if p.name != "_common.py")
    assert not re.search(r"^\w*CELLS = \{[^}]*rnnjax\.lstm", sources, re.MULTILINE)  # no second table of the cells
    assert translate.Config.CELL_CHOICES == _common.CARRY_CELLS and set(_common.CARRY_CELLS) < set(_common.CELLS)
