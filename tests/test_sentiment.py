"""The sentiment experiment end to end on its built-in sentences: cross-validation, saved folds, predict."""

import json

import numpy as np
import pytest

from experiments import sentiment


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sentiment")
    result = sentiment.run(sentiment.Config(**sentiment.QUICK), out=out, progress=False)
    return out, result


def test_quick_cross_validation_learns_and_saves_every_fold(run_dir):
    out, result = run_dir
    assert result["folds_run"] == 3 and sum(f["test_size"] for f in result["folds"]) == 600  # folds partition the data
    assert result["rnn_accuracy"]["mean"] >= 0.95 and result["bow_accuracy"]["mean"] >= 0.95
    for fold in result["folds"]:
        assert len(fold["rnn_single_accuracies"]) == 2 and all(1 <= e <= 8 for e in fold["best_epochs"])
        assert fold["bow_l2"] in sentiment.L2_GRID
        assert (out / f"fold-{fold['fold']}" / "vocab_words.json").exists()
    assert json.loads((out / "result.json").read_text())["rnn_accuracy"] == result["rnn_accuracy"]


def test_a_rerun_keeps_the_finished_folds_and_another_config_is_refused(run_dir, tmp_path, capsys):
    """Issue 18: sentiment rewrote config.json itself, so a rerun with other settings mixed two runs' folds."""
    out, result = run_dir
    again = sentiment.run(sentiment.Config(**sentiment.QUICK), out=out, progress=False)
    assert again["folds"] == result["folds"] and again["rnn_accuracy"] == result["rnn_accuracy"]
    assert capsys.readouterr().out.count("kept from an earlier run of this config") == 3
    with pytest.raises(SystemExit) as exit_:
        sentiment.main(["--quick", "--hidden=24", f"--out={out}"])
    assert exit_.value.code == 2 and "holds a run with another config (hidden: saved 16, now 24)" in capsys.readouterr().err


def test_predict_from_checkpoints_gives_probabilities_unchanged_by_padding(run_dir, capsys):
    out, _ = run_dir
    sentences = ["the plot was great and moving .", "a dull , tedious film .", "the story of the cast and the plot was awful"]
    probs, notes = sentiment.main(["predict", *sentences, "--out", str(out)])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert probs[0, 1] > 0.9 and probs[1, 0] > 0.9 and probs[2, 0] > 0.9
    assert notes == ["", "", ""]
    printed = capsys.readouterr().out
    assert "a dull , tedious film .\n  negative 0." in printed
    # the shortest sentence alone (no padding) gets the probabilities it got in the batch (most padding)
    alone, _ = sentiment.main(["predict", sentences[1], f"--out={out}"])
    np.testing.assert_allclose(alone[0], probs[1], atol=1e-6)
    one, _ = sentiment.main(["predict", sentences[0], "--out", str(out), "--fold", "1"])
    assert one[0, 1] > 0.9


def test_predict_errors_and_notes(run_dir, tmp_path, capsys):
    out, _ = run_dir
    with pytest.raises(SystemExit):
        sentiment.main(["predict", "  ", "--out", str(out)])
    assert "empty sentence '  ': there is nothing to classify" in capsys.readouterr().err
    probs, notes = sentiment.main(["predict", "zyzzyva quokka", "--out", str(out)])
    assert "every word is unknown to the vocabulary" in notes[0] and np.isclose(probs.sum(), 1.0)
    assert "(note: every word is unknown" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        sentiment.main(["predict", "good", "--out", str(tmp_path / "nothing")])
    assert "no trained sentiment model in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sentiment.main(["predict", "--out", str(out)])
    assert "the following arguments are required: SENTENCE" in capsys.readouterr().err
    for fold, message in (("x", "argument --fold: expected an integer, got 'x'"), ("7", "--fold 7: ")):
        with pytest.raises(SystemExit) as exit_:
            sentiment.main(["predict", "good", "--out", str(out), "--fold", fold])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    # a vocabulary that is not the checkpoint's
    vocab_file = out / "fold-0" / "vocab_words.json"
    saved = vocab_file.read_text()
    try:
        tokens = json.loads(saved)["tokens"]
        vocab_file.write_text(json.dumps({"tokens": tokens[:2] + tokens[3:] + [tokens[2]]}))
        with pytest.raises(SystemExit):
            sentiment.main(["predict", "good", "--out", str(out), "--fold", "0"])
        assert "vocabulary mismatch in" in capsys.readouterr().err
    finally:
        vocab_file.write_text(saved)


def test_checkpoint_from_another_model_shape_is_refused(run_dir, tmp_path, capsys):
    out, _ = run_dir
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "hidden": 24}))
    with pytest.raises(SystemExit):
        sentiment.main(["predict", "good", "--out", str(copy), "--fold", "0"])
    assert "does not match its vocabulary or config" in capsys.readouterr().err


def test_bad_configs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown cell 'tcn'"):
        sentiment.run(sentiment.Config(**{**sentiment.QUICK, "cell": "tcn"}), out=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"run_folds in 0..folds=3 \(0 means all\), got folds=3, run_folds=4"):
        sentiment.run(sentiment.Config(**{**sentiment.QUICK, "run_folds": 4}), out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="unknown corpus 'imdb'"):
        sentiment.run(sentiment.Config(**{**sentiment.QUICK, "corpus": "imdb"}), out=tmp_path, progress=False)
