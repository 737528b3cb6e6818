"""The translation experiment: the quick task to 100%, translating from a checkpoint, clear errors."""

import json

import pytest

from experiments import translate


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("translate")
    result = translate.run(translate.Config(**translate.QUICK), out=out, progress=False)
    return out, result


def test_quick_task_reaches_exact_match_on_held_out_pairs(run_dir):
    out, result = run_dir
    assert result["greedy"]["exact_match"] == 1.0 and result["beam5"]["exact_match"] == 1.0
    assert json.loads((out / "result.json").read_text())["greedy"]["exact_match"] == 1.0
    example = result["greedy"]["examples"][0]
    assert example["output"] == example["source"][::-1]


def test_translate_from_the_checkpoint(run_dir, capsys):
    out, _ = run_dir
    texts = translate.main(["translate", "12345", "9081726", "--out", str(out)])
    assert texts == ["54321", "6271809"]
    assert "12345\n  -> 54321" in capsys.readouterr().out
    assert translate.main(["translate", "907", f"--out={out}", "--beam", "1"]) == ["709"]


def test_translate_errors(run_dir, tmp_path, capsys):
    out, _ = run_dir
    with pytest.raises(SystemExit):
        translate.main(["translate", "   ", "--out", str(out)])
    assert "empty source sentence '   ': there is nothing to translate" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="source of 12 tokens truncated to max_src_len=8"):
        texts = translate.main(["translate", "123456789012", "--out", str(out)])
    assert texts == ["87654321"]  # the documented behaviour: the first max_src_len tokens are translated
    with pytest.raises(SystemExit):
        translate.main(["translate", "1", "--out", str(tmp_path / "none")])
    assert "no trained run in" in capsys.readouterr().err
    vocab_file = out / "vocab_tgt.json"
    saved = vocab_file.read_text()
    try:
        vocab = json.loads(saved)
        vocab_file.write_text(json.dumps({"tokens": vocab["tokens"][:3] + vocab["tokens"][4:] + vocab["tokens"][3:4]}))
        with pytest.raises(SystemExit):
            translate.main(["translate", "12", "--out", str(out)])
        assert "vocabulary mismatch in" in capsys.readouterr().err
        vocab_file.write_text(json.dumps({"tokens": vocab["tokens"][:-1]}))
        with pytest.raises(SystemExit):
            translate.main(["translate", "12", "--out", str(out)])
        assert "vocabulary mismatch in" in capsys.readouterr().err
    finally:
        vocab_file.write_text(saved)


def test_words_and_detokenize_keep_german_letters():
    assert translate.words("Er hat sich den Kopf am Balken gestoßen. Schön!") == [
        "er", "hat", "sich", "den", "kopf", "am", "balken", "gestoßen", ".", "schön", "!"]
    assert translate.words("It’s too bad you weren’t able.") == ["it's", "too", "bad", "you", "weren't", "able", "."]
    assert translate.detokenize(["he", "is", "here", ",", "isn't", "he", "?"]) == "he is here, isn't he?"
    with pytest.raises(ValueError, match="unknown task 'fr-en'"):
        translate.load(translate.Config(task="fr-en"))


def test_bleu_is_sacrebleu_on_detokenised_lower_case_output():
    cfg = translate.Config()
    vocab = translate.target_vocab([["he", "hit", "his", "head", "on", "the", "beam", "."]], 1)
    ids = [vocab.encode(["he", "hit", "his", "head", "on", "the", "beam", "."]), vocab.encode(["the", "beam", "."])]
    scored = translate.score(cfg, vocab, ids, ["He hit his head on the beam.", "He hit his head on the beam."])
    assert scored["hypotheses"] == ["he hit his head on the beam.", "the beam."]
    assert scored["exact_match"] == 0.5
    assert 0 < scored["bleu"] < 100
    perfect = translate.score(cfg, vocab, ids[:1], ["He hit his head on the beam."])
    assert perfect["bleu"] == pytest.approx(100.0)


def test_label_smoothing_is_the_hand_computed_value():
    import jax
    import jax.numpy as jnp
    import numpy as np

    # p = softmax([0, ln 2, 0]) = [1/4, 1/2, 1/4], target 1: plain −ln p_1 = ln 2; with ε = 0.1 the loss is
    # 0.9 · ln 2 + 0.1 · (ln 4 + ln 2 + ln 4) / 3 = (0.9 + 0.5 / 3) ln 2
    logits, label = jnp.array([[0.0, np.log(2.0), 0.0]]), jnp.array([1])
    np.testing.assert_allclose(translate.smoothed_xent(logits, label), [np.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(translate.smoothed_xent(logits, label, 0.1), [(0.9 + 0.5 / 3) * np.log(2.0)], rtol=1e-6)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\), got 1.0"):
        translate.Config(label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"word_dropout must be in \[0, 1\), got 1.5"):
        translate.Config(word_dropout=1.5)
    with pytest.raises(ValueError, match="only the de-en task has a dictionary"):
        translate.Config(task="en-fr", dictionary_entries=100)
    with pytest.raises(ValueError, match="dictionary_tag marks the dictionary entries"):
        translate.Config(dictionary_tag=True)
    with pytest.raises(ValueError, match="lexical: .* needs --attention=true"):
        translate.Config(attention=False, lexical=True)
    assert translate.build_model(translate.Config(lexical=True), (20, 30)).init(jax.random.key(0))["lexical"]["w_out"].shape == (256, 256)
    with pytest.raises(ValueError, match="input_feeding: .* needs --attention=true"):
        translate.Config(attention=False, input_feeding=True)
    fed = translate.build_model(translate.Config(input_feeding=True), (20, 30)).init(jax.random.key(0))
    assert fed["decoder"][0]["w_x"].shape == (256 + 256, 4 * 256)  # the target embedding and h̃


def test_the_dictionary_and_bible_tags_reach_the_data(monkeypatch):
    seen = []
    monkeypatch.setattr(translate.translation, "german_english",
                        lambda entries=0, tag="", verses=0, verses_tag="": seen.append((entries, tag, verses, verses_tag)) or {})
    translate.load(translate.Config(dictionary_entries=5, dictionary_tag=True))
    translate.load(translate.Config(dictionary_entries=5))
    translate.load(translate.Config(bible_verses=7, bible_tag=True))
    translate.load(translate.Config(bible_verses=7))
    assert seen == [(5, translate.DICTIONARY_TAG, 0, ""), (5, "", 0, ""), (0, "", 7, translate.BIBLE_TAG), (0, "", 7, "")]
    with pytest.raises(ValueError, match="bible_tag marks the Bible verses .* give --bible_verses=N too"):
        translate.Config(bible_tag=True)
    with pytest.raises(ValueError, match="bible_verses: German→English verses join the de-en task only, not 'en-fr'"):
        translate.Config(task="en-fr", bible_verses=10)
    with pytest.raises(ValueError, match=r"bible_verses must be at least 0 \(0: none\), got -1"):
        translate.Config(bible_verses=-1)


def test_input_feeding_trains_decodes_and_translates_from_its_checkpoint(tmp_path):
    tiny = dict(translate.QUICK, hidden=16, embed=8, steps=4, eval_every=2, checkpoint_every=2, input_feeding=True)
    result = translate.run(translate.Config(**tiny), out=tmp_path, progress=False)
    assert result["steps"] == 4 and 0 <= result["beam5"]["exact_match"] <= 1
    for beam in ("1", "5"):  # greedy and beam search carry h̃ with the decoder's cells
        (text,) = translate.main(["translate", "12345", "--out", str(tmp_path), "--beam", beam])
        assert isinstance(text, str) and len(text) <= tiny["max_len"]


def test_an_averaged_run_selects_tests_and_translates_with_the_average(tmp_path):
    """``--average``: validation, the test and ``translate`` all read the params' moving average kept in the
    best checkpoint's optimiser state, not the params trained last."""
    import jax

    import rnnjax
    from experiments import _common
    from rnnjax.checkpoint import Checkpointer
    from rnnjax.train import tree_equal

    tiny = dict(translate.QUICK, hidden=16, embed=8, steps=60, eval_every=20, checkpoint_every=20, average=0.9)
    translate.run(translate.Config(**tiny), out=tmp_path, progress=False)
    cfg, _, tgt_vocab, model, params, segs = translate.load_run(tmp_path)
    template = rnnjax.init_state(model.init(jax.random.key(0)), _common.make_optimizer(cfg), jax.random.key(0))
    best, _ = Checkpointer(tmp_path / "best").restore(template)
    assert tree_equal(params, rnnjax.eval_params(best)) and not tree_equal(params, best.params)
    data = translate.prepare(cfg, translate.load(cfg), segs)
    src, _, refs = data.splits["test"]
    hypotheses = {name: translate.score(cfg, tgt_vocab, translate.translate_ids(cfg, model, p, src, 1), refs, segs[1])["hypotheses"]
                  for name, p in (("average", params), ("last", best.params))}
    assert hypotheses["average"] != hypotheses["last"]  # the two differ, and the test was scored with the average
    assert (tmp_path / "test_greedy.txt").read_text() == "".join(f"{h}\n" for h in hypotheses["average"])


def test_selection_keeps_the_best_lowers_the_rate_on_a_plateau_and_stops(tmp_path):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import rnnjax

    cfg = translate.Config(patience=3, lr_decay=0.5, lr_patience=2, learning_rate=1e-2)
    opt = rnnjax.make_optimizer("adam", 1e-2)
    selection = translate.Selection(tmp_path, "eval_bleu", cfg)
    state = rnnjax.init_state({"w": jnp.zeros(2)}, opt, jax.random.key(0))
    lr, stops = [], []
    for k, bleu in enumerate([1.0, 3.0, 2.0, 3.0, 2.5], start=1):  # a tie with the best is not better
        with open(tmp_path / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": 10 * k, "eval_bleu": bleu}) + "\n")
        state = state._replace(params={"w": jnp.full(2, float(k))}, step=jnp.int32(10 * k))
        state = selection.on_eval(state, [])
        lr.append(float(state.opt_state.hyperparams["learning_rate"]))
        stops.append(selection.stop([]))
    np.testing.assert_allclose(lr, [1e-2, 1e-2, 1e-2, 5e-3, 5e-3])  # halved after 2 evaluations without a better one
    assert stops == [False, False, False, False, True]  # 3 without a better one
    best, step = selection.best(state)
    assert step == 20 and np.all(best.params["w"] == 2.0) and int(best.step) == 50
    with pytest.raises(ValueError, match="lr_decay lowers a constant learning rate"):
        translate.Config(lr_decay=0.5, schedule="cosine")
    with pytest.raises(ValueError, match=r"lr_decay must be in \(0, 1\]"):
        translate.Config(lr_decay=1.5)


def test_ablations_train_each_part_switched_off_in_its_own_folder(tmp_path, capsys):
    """``--ablations``: the config and each recipe part that is on, switched off, one folder each, no test."""
    tiny = dict(translate.QUICK, hidden=16, embed=8, steps=4, eval_every=2, checkpoint_every=2, bidirectional=True, attention=False)
    cfg = translate.Config(**tiny, ablations=True)
    out = tmp_path / "ablations"
    summary = translate.run(cfg, out=out, progress=False)
    # QUICK has subwords, dropouts, tying, smoothing and lr decay off, attention is off here, and reverse
    # has no dictionary, the lexical model and input feeding need attention: so the config, the
    # unidirectional encoder and the params' moving average
    assert [r["run"] for r in summary["runs"]] == ["config", "unidirectional", "average"]
    for row in summary["runs"]:
        folder = out / row["run"]
        saved = json.loads((folder / "config.json").read_text())
        assert saved["ablations"] is False
        change = {} if row["run"] == "config" else translate.ABLATIONS[row["run"]][1]
        assert {k: saved[k] for k in change} == change
        scores = [r["eval_exact_match"] for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
                  if "eval_exact_match" in r]
        assert len(scores) == 2 and row["validation_exact_match"] == max(scores) and row["steps"] == 4
        assert not (folder / "test_references.txt").exists()
    assert json.loads((out / "ablations.json").read_text()) == summary
    assert "a unidirectional encoder" in capsys.readouterr().out
    with pytest.raises(ValueError, match="ablations needs an output folder"):
        translate.run(cfg, out=None, progress=False)


def test_an_ensemble_of_runs_scores_the_test_split_and_refuses_what_it_cannot_combine(run_dir, tmp_path, capsys, monkeypatch):
    """``ensemble``: two runs of one task and split decode together; a run with itself gives its own outputs;
    a member of another vocabulary or split, one run alone, or --out a member's folder are refused."""
    out, result = run_dir
    other = tmp_path / "other"  # the same task, split and vocabularies, another size and far less training
    translate.run(translate.Config(**dict(translate.QUICK, hidden=16, embed=8, steps=40, eval_every=20, checkpoint_every=20)),
                  out=other, progress=False)
    ens = translate.main(["ensemble", str(out), str(other), "--out", str(tmp_path / "ens")])
    assert set(ens) == {"members", "greedy", "beam5"} and 0 <= ens["beam5"]["exact_match"] <= 1
    for name in ("greedy", "beam5"):
        lines = (tmp_path / "ens" / f"test_{name}.txt").read_text().splitlines()
        assert len(lines) == 1000 and lines != (other / f"test_{name}.txt").read_text().splitlines()
    assert "test beam5, 2 members: exact match" in capsys.readouterr().out
    # a run with itself: the mean of one distribution twice is that distribution
    twice = translate.main(["ensemble", str(out), str(out), "--out", str(tmp_path / "twice"), "--beam", "3"])
    assert twice["greedy"]["exact_match"] == result["greedy"]["exact_match"] == 1.0 and "beam3" in twice
    assert (tmp_path / "twice" / "test_greedy.txt").read_text() == (out / "test_greedy.txt").read_text()
    compared = translate.main(["compare", str(other), str(tmp_path / "ens")])  # compare takes an ensemble's folder
    assert set(compared) == {str(other), str(tmp_path / "ens")}
    seed = tmp_path / "seed"  # another seed: another split of the synthetic task, so other vocabularies (refused first)
    translate.run(translate.Config(**dict(translate.QUICK, hidden=16, embed=8, steps=2, eval_every=2, checkpoint_every=2, seed=1)),
                  out=seed, progress=False)
    for argv, message in (([str(out)], "needs two or more trained runs, got 1"),
                          ([str(out), str(other), "--out", str(other)], "is one of the members"),
                          ([str(out), str(seed)], "in the source vocabulary, the target vocabulary: the members must"),
                          ([str(out), str(tmp_path / "none")], "no trained run in")):
        with pytest.raises(SystemExit):
            translate.main(["ensemble", *argv] + ([] if "--out" in argv else ["--out", str(tmp_path / "bad")]))
        assert message in capsys.readouterr().err
    reversed_ = tmp_path / "reversed"  # another source order: other source ids for the same sentence
    translate.run(translate.Config(**dict(translate.QUICK, hidden=16, embed=8, steps=2, eval_every=2, checkpoint_every=2,
                                          reverse_source=True)), out=reversed_, progress=False)
    with pytest.raises(SystemExit):
        translate.main(["ensemble", str(out), str(reversed_), "--out", str(tmp_path / "bad")])
    assert "differs from" in (err := capsys.readouterr().err) and "in reverse_source:" in err
    load = translate.load  # a member whose held-out pairs are not the first's
    monkeypatch.setattr(translate, "load", lambda cfg: (lambda d: d if cfg.hidden != 16 else {**d, "test": d["test"][::-1]})(load(cfg)))
    with pytest.raises(SystemExit):
        translate.main(["ensemble", str(out), str(other), "--out", str(tmp_path / "bad")])
    assert "holds out other test pairs" in capsys.readouterr().err
