"""The performance benchmark's quick mode runs (so the benchmark cannot rot) and its figures hang together.
No timing is asserted: the machines are shared and noisy."""

import numpy as np
import pytest

from experiments import benchmark


def test_quick_benchmark_times_every_variant_and_reports_ratios(capsys):
    out = benchmark.main(["--quick", "--cells=lstm,gru"])
    rows = out["rows"]
    assert [(r["config"], r["cell"]) for r in rows] == [("S", "lstm"), ("S", "gru"), ("L", "lstm"), ("L", "gru")]
    for r in rows:
        assert set(r["median_s"]) == {"rnnjax", "rnnjax autodiff", "Flax", "PyTorch"}
        assert r["fastest_peer"] in ("Flax", "PyTorch")
        peer = min(r["median_s"]["Flax"], r["median_s"]["PyTorch"])
        np.testing.assert_allclose(r["ratio"], r["median_s"]["rnnjax"] / peer)
        # every framework trains the same model on the same data: a mean-squared error of unit-variance
        # targets starts near 1 (plus the readout's initial output)
        assert all(0.5 < loss < 3.0 for loss in r["first_loss"].values()), r["first_loss"]
        assert r["compile_s"]["rnnjax"] > 0
    printed = capsys.readouterr().out
    assert "allocator:" in printed and printed.count("| S (4, 12, 6, 8) |") == 2 and "rnnjax / fastest peer" in printed


def test_flop_count_is_the_textbook_one():
    # LSTM, B 1, T 1, D 2, H 3: forward 2*(2+3)*4*3 + 2*3*2 = 132 multiply-adds x2 ... times 3 for fwd + bwd
    assert benchmark.matmul_flops("lstm", 1, 1, 2, 3) == 3 * (2 * ((2 + 3) * 4 * 3 + 3 * 2))
    assert benchmark.matmul_flops("gru", 2, 5, 2, 3) == 10 * benchmark.matmul_flops("gru", 1, 1, 2, 3)


def test_memory_table_quick_shows_remat_keeping_less(capsys):
    out = benchmark.main(["memory", "--quick"])
    (plain_short, remat_short), (plain_long, remat_long) = out["rows"]
    assert remat_long["temp_bytes"] < plain_long["temp_bytes"]
    assert plain_long["temp_bytes"] > plain_short["temp_bytes"]  # residuals grow with T without remat
    assert out["measured"]["rss_bytes"] > 0 and np.isfinite(out["measured"]["loss"])
    assert "remat" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--configs=XL"], ["--cells=lstm,transformer"], ["--repeats=0"], ["--fast"], ["memory", "--long"],
                                  ["linear", "--depth=3"], ["linear", "--lengths=0,8"]])
def test_bad_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as err:
        benchmark.main(argv)
    printed = capsys.readouterr().err
    assert err.value.code == 2 and printed.startswith("error: ") and printed.count("\n") == 1


def test_quick_profile_splits_the_step_into_parts(capsys):
    rows = benchmark.main(["profile", "--quick", "--repeats=2"])
    assert [r[0].split(" (")[0] for r in rows] == ["training step", "forward pass only", "recurrent products alone", "input projection"]
    assert all(a > 0 and b > 0 and flops > 0 for _, a, b, flops in rows)
    assert "| training step |" in capsys.readouterr().out


def test_quick_linear_table_times_parallel_and_sequential_unrolls(capsys):
    rows = benchmark.main(["linear", "--quick"])
    assert [r["length"] for r in rows] == [16, 64]
    for r in rows:
        assert set(r["median_s"]) == {f"{c} {m}" for c in benchmark.LINEAR for m in ("parallel", "sequential")} | {"LSTM"}
        assert all(t > 0 for t in r["median_s"].values()) and all(t > 0 for t in r["compile_s"].values())
    printed = capsys.readouterr().out
    assert "| 64 |" in printed and "min_gru seq / par" in printed
