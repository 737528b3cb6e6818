#!/bin/bash
# What a second process costs: the adding problem (T 50, LSTM(128), global batch 64, data-parallel) for 300
# steps as 1 process x 1 device, 1 process x 2 devices, 2 processes x 1 device (experiments/launch.py), in
# turn, ROUNDS times; prints steps/s between steps 100 and 300 (compile excluded) and the ratios to 1 x 1.
#   bash experiments/throughput.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.
TC=$(ls /usr/lib/*/libtcmalloc_minimal.so.4 2>/dev/null | head -1 || true)
if [ -n "$TC" ]; then export LD_PRELOAD=$TC; fi
PY=${PY:-.venv/bin/python}
O="--length=50 --hidden=128 --batch=64 --steps=300 --eval_every=0 --checkpoint_every=0 --data_parallel=true"
OUT=$(mktemp -d)
for round in $(seq "${1:-2}"); do
  XLA_FLAGS=--xla_force_host_platform_device_count=1 $PY -m experiments.adding $O --out "$OUT/1x1-$round" > /dev/null 2>&1
  XLA_FLAGS=--xla_force_host_platform_device_count=2 $PY -m experiments.adding $O --out "$OUT/1x2-$round" > /dev/null 2>&1
  $PY -m experiments.launch --processes=2 --devices=1 -- experiments.adding $O --out "$OUT/2x1-$round" > /dev/null 2>&1
  $PY - "$OUT" "$round" <<'PYEOF'
import json, pathlib, sys
out, r = pathlib.Path(sys.argv[1]), sys.argv[2]
def rate(name):
    rows = [json.loads(line) for line in open(out / f"{name}-{r}" / "metrics.jsonl")]
    a, b = next(x for x in rows if x["step"] == 100), rows[-1]
    return (b["step"] - a["step"]) / (b["train_s"] - a["train_s"])
base = rate("1x1")
for name, label in (("1x1", "1 process, 1 device"), ("1x2", "1 process, 2 devices"), ("2x1", "2 processes, 1 device each")):
    print(f"round {r}: {label}: {rate(name):.1f} steps/s ({rate(name) / base:.2f}x)")
PYEOF
done
rm -rf "$OUT"
