"""Subword segmentation (rnnjax.datasets.subwords, sentencepiece) and the translation experiment on pieces."""

import itertools
import json

import pytest

from experiments import translate
from rnnjax.datasets import subwords

NOUNS = [("der hund", "the dog"), ("die katze", "the cat"), ("das kind", "the child"), ("der lehrer", "the teacher"),
         ("die straßenbahn", "the tram"), ("das fahrrad", "the bicycle"), ("der großvater", "the grandfather")]
VERBS = [("sieht", "sees"), ("mag", "likes"), ("sucht", "looks for"), ("findet", "finds"), ("vergisst", "forgets")]


def corpus():
    """A small, regular German→English corpus: subject, verb, object (294 sentences)."""
    return [(f"{s} {v} {o}.".capitalize(), f"{se} {ve} {oe}.".capitalize())
            for (s, se), (v, ve), (o, oe) in itertools.product(NOUNS, VERBS, NOUNS) if s != o]


@pytest.fixture(scope="module")
def german():
    return subwords.train([de for de, _ in corpus()], 60)


def test_pieces_round_trip_to_the_case_folded_text(german):
    for sentence in ["Der Hund sieht die Katze.", "Der Großvater vergisst das Fahrrad.", "Die Katze findet den Lehrer."]:
        pieces = german.pieces(sentence)
        assert german.detokenize(pieces) == sentence.lower()
        assert pieces[0].startswith("▁") and len(pieces) > len(sentence.split())  # pieces, not whole words
    assert german.size == 60
    # an unseen word is spelled with known pieces; unseen characters stay a piece of their own, which a
    # vocabulary of the training pieces maps to <unk>, written back as ⁇
    assert german.pieces("Katzen")[-1] == "en" and "42" in german.pieces("Der Hund sieht 42 Katzen.")
    assert german.detokenize(["▁der", "<unk>"]).startswith("der ⁇")


def test_training_is_deterministic_and_the_model_saves_and_loads(german, tmp_path):
    again = subwords.train([de for de, _ in corpus()], 60)
    assert again.fingerprint() == german.fingerprint() and again.proto == german.proto
    assert subwords.train([de for de, _ in corpus()], 50).fingerprint() != german.fingerprint()
    path = german.save(tmp_path / "de.model")
    loaded = subwords.Subwords.load(path)
    assert loaded.fingerprint() == german.fingerprint()
    assert loaded.pieces("Das Kind mag den Hund.") == german.pieces("Das Kind mag den Hund.")
    path.write_bytes(b"not a model")
    with pytest.raises(subwords.SubwordError, match="not a sentencepiece model"):
        subwords.Subwords.load(path)


def test_bad_training_arguments():
    with pytest.raises(subwords.SubwordError, match="vocab_size must be an integer of at least 8, got 4"):
        subwords.train(["ein satz"], 4)
    with pytest.raises(subwords.SubwordError, match="unknown subword model type 'wordpiece'"):
        subwords.train(["ein satz"], 32, model_type="wordpiece")
    with pytest.raises(subwords.SubwordError, match="no sentences"):
        subwords.train(["", "  "], 32)
    small = subwords.train(["ein kleiner satz"], 1000)  # too few characters for 1,000 pieces: fewer, no error
    assert small.size < 1000


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    pairs = corpus()
    data = {"train": pairs[:-40], "validation": pairs[-40:-20], "test": pairs[-20:]}
    out = tmp_path_factory.mktemp("translate-bpe")
    cfg = translate.Config(subwords=64, hidden=32, embed=16, batch=32, steps=60, eval_every=30, checkpoint_every=30,
                           max_len=20, learning_rate=1e-2, attention=True,
                           dropout=0.1, word_dropout=0.1, tie_embeddings=True, label_smoothing=0.1, bidirectional=True)  # the whole recipe runs
    return out, translate.run(cfg, out=out, progress=False, pairs=data)


def test_translation_on_subwords_trains_scores_and_translates_from_the_checkpoint(bpe_run, capsys):
    out, result = bpe_run
    info = json.loads((out / "model.json").read_text())
    for name in ("src", "tgt"):
        model = subwords.Subwords.load(out / f"subwords_{name}.model")
        assert info[f"{name}_subwords_sha256"] == model.fingerprint()
    assert 0 <= result["beam5"]["bleu"] <= 100
    assert all(h == h.lower() for h in (e["output"] for e in result["greedy"]["examples"]))  # pieces joined to text
    texts = translate.main(["translate", "Der Hund mag die Katze.", "--out", str(out)])
    assert len(texts) == 1 and "▁" not in texts[0]


def test_a_subword_model_that_is_not_the_checkpoints_is_refused(bpe_run, capsys, tmp_path):
    out, _ = bpe_run
    path = out / "subwords_tgt.model"
    saved = path.read_bytes()
    try:
        subwords.train([en for _, en in corpus()], 50).save(path)  # another model of the same language
        with pytest.raises(SystemExit):
            translate.main(["translate", "Der Hund mag die Katze.", "--out", str(out)])
        assert "segmentation mismatch in" in capsys.readouterr().err
        path.unlink()
        with pytest.raises(SystemExit):
            translate.main(["translate", "Der Hund mag die Katze.", "--out", str(out)])
        assert "subwords_tgt.model is missing" in capsys.readouterr().err
    finally:
        path.write_bytes(saved)


def test_subwords_config_errors():
    with pytest.raises(ValueError, match="read character by character"):
        translate.Config(task="reverse", subwords=100)
    with pytest.raises(ValueError, match="subwords must be 0 \\(words\\) or at least 8 pieces, got 3"):
        translate.Config(subwords=3)


def test_compare_gives_intervals_and_paired_p_values(bpe_run, tmp_path, capsys):
    out, result = bpe_run
    perfect = tmp_path / "perfect"
    perfect.mkdir()
    refs = (out / "test_references.txt").read_text()
    (perfect / "test_references.txt").write_text(refs)
    (perfect / "test_beam5.txt").write_text(refs)  # a system that writes the references
    table = translate.main(["compare", str(out), str(perfect), "--samples=200"])
    assert table[str(out)]["bleu"] == pytest.approx(result["beam5"]["bleu"], abs=0.01)  # the run's own score
    assert table[str(out)]["p_value"] is None and table[str(out)]["ci95"] >= 0
    assert table[str(perfect)]["bleu"] == pytest.approx(100.0) and table[str(perfect)]["p_value"] < 0.05
    assert "p = " in capsys.readouterr().out
    other = tmp_path / "other"
    other.mkdir()
    (other / "test_references.txt").write_text("another sentence.\n" + refs)
    (other / "test_beam5.txt").write_text("another sentence.\n" + refs)
    with pytest.raises(SystemExit):
        translate.main(["compare", str(out), str(other)])
    assert "was tested on other sentences" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        translate.main(["compare", str(out), str(tmp_path)])
    assert "holds no scored test outputs" in capsys.readouterr().err
