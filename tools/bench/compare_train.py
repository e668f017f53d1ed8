#!/usr/bin/env python3
"""GQATrader training step, attnlab against PyTorch eager on the same GPU, as one table with ratios.

Runs `attnlab bench model --device cuda --json` and `tools/bench/train_pytorch.py --json` one after
the other (same model, same step: autocast forward + MSE loss, backward, unscale, clip_grad_norm_(1.0),
AdamW; f16 with a GradScaler; 3 warm-up and 20 timed steps each), or reads their saved JSON outputs,
and prints per precision: step ms of both, ours/PyTorch (lower is better; issue 16's target for bf16
is <= 1.25, the goal <= 1.0), samples/s and peak GPU memory.

    python3 tools/bench/compare_train.py                           # runs both (build/tools/attnlab)
    python3 tools/bench/compare_train.py --attnlab gpupack/x/bin/attnlab --out cmp.json
    python3 tools/bench/compare_train.py --ours ours.json --torch torch.json   # join saved outputs
    python3 tools/bench/compare_train.py --quick                   # the small config on both sides

The machine's GPU and both frameworks' versions are printed with the table; never compare rows from
different runs or GPUs.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# attnlab's `bench model --quick` config (tools/bench/bench_model.cpp kSmall) as train_pytorch.py flags
QUICK_TORCH_ARGS = ["--d-model", "64", "--n-heads", "4", "--n-kv-heads", "2", "--n-layers", "2", "--d-ff", "256",
                    "--seq", "64", "--batch", "32", "--steps", "5"]
CONFIG_KEYS = ["d_model", "n_heads", "n_kv_heads", "n_layers", "d_ff", "seq", "batch"]


def run_json(cmd):
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    if not out.strip():  # train_pytorch.py without torch or CUDA says why on stderr and prints nothing
        sys.exit(f"compare_train.py: {os.path.basename(cmd[1] if cmd[0] == sys.executable else cmd[0])} "
                 "printed no results (see its message above)")
    return json.loads(out)


def ours_rows(doc):
    if isinstance(doc, dict) and doc.get("skipped"):
        sys.exit(f"compare_train.py: attnlab's bench was skipped: {doc['skipped']}")
    rows = doc["rows"] if isinstance(doc, dict) else doc
    return {r["precision"]: r for r in rows}


def torch_rows(doc):
    return {r["precision"]: r for r in doc}


def join(ours, theirs):
    """One row per precision both sides measured; an error when their model configs differ."""
    rows = []
    for precision in ["f32", "bf16", "f16"]:
        a, b = ours.get(precision), theirs.get(precision)
        if a is None or b is None:
            continue
        diff = [k for k in CONFIG_KEYS if a.get(k) != b.get(k)]
        if diff:
            sys.exit(f"compare_train.py: {precision}: the two runs trained different models ("
                     + ", ".join(f"{k} {a.get(k)} vs {b.get(k)}" for k in diff) + ")")
        rows.append({"precision": precision, "config": {k: a[k] for k in CONFIG_KEYS},
                     "gpu": a.get("gpu"), "torch_gpu": b.get("gpu"), "torch_version": b.get("framework"),
                     "ours_step_ms": a["step_ms"], "torch_step_ms": b["step_ms"],
                     "ratio": a["step_ms"] / b["step_ms"],
                     "ours_samples_per_s": a["train_samples_per_s"], "torch_samples_per_s": b["train_samples_per_s"],
                     "ours_peak_bytes": a.get("peak_bytes", 0), "torch_peak_bytes": b.get("peak_bytes", 0)})
    if not rows:
        sys.exit("compare_train.py: no precision was measured by both runs")
    return rows


def print_table(rows):
    r0 = rows[0]
    c = r0["config"]
    print(f"GQATrader training step on {r0['gpu']}: attnlab vs {r0['torch_version']} eager "
          f"(C{c['d_model']} H{c['n_heads']} Hkv{c['n_kv_heads']} L{c['n_layers']} dff{c['d_ff']} "
          f"T{c['seq']} B{c['batch']})")
    if r0["torch_gpu"] != r0["gpu"]:
        print(f"warning: PyTorch reports the GPU as {r0['torch_gpu']}")
    head = ["precision", "ours ms", "torch ms", "ours/torch", "ours smp/s", "torch smp/s", "ours GiB", "torch GiB"]
    print(" ".join(f"{h:>11}" for h in head))
    for r in rows:
        cells = [r["precision"], f"{r['ours_step_ms']:.2f}", f"{r['torch_step_ms']:.2f}", f"{r['ratio']:.2f}",
                 f"{r['ours_samples_per_s']:.0f}", f"{r['torch_samples_per_s']:.0f}",
                 f"{r['ours_peak_bytes'] / 2**30:.2f}", f"{r['torch_peak_bytes'] / 2**30:.2f}"]
        print(" ".join(f"{x:>11}" for x in cells))
    bf16 = next((r for r in rows if r["precision"] == "bf16"), None)
    if bf16:
        verdict = "meets" if bf16["ratio"] <= 1.25 else "misses"
        print(f"bf16 ours/torch {bf16['ratio']:.2f}: {verdict} issue 16's target (<= 1.25; goal <= 1.0)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--attnlab", default=os.path.join(HERE, "..", "..", "build", "tools", "attnlab"),
                   help="the attnlab binary (a CUDA build)")
    p.add_argument("--device", default="cuda", help="cuda or cuda:N, for both runs")
    p.add_argument("--ours", help="saved output of `attnlab bench model --device cuda --json` (skips running it)")
    p.add_argument("--torch", help="saved output of `train_pytorch.py --json` (skips running it)")
    p.add_argument("--quick", action="store_true", help="the small config (attnlab's --quick) on both sides")
    p.add_argument("--out", help="also write the joined rows as JSON here")
    p.add_argument("--json", action="store_true", help="print the joined rows as JSON instead of a table")
    a = p.parse_args(argv)

    if a.ours:
        with open(a.ours) as f:
            ours = json.load(f)
    else:
        ours = run_json([a.attnlab, "bench", "model", "--device", a.device, "--json"] + (["--quick"] if a.quick else []))
    if a.torch:
        with open(a.torch) as f:
            theirs = json.load(f)
    else:
        cmd = [sys.executable, os.path.join(HERE, "train_pytorch.py"), "--device", a.device, "--json"]
        theirs = run_json(cmd + (QUICK_TORCH_ARGS if a.quick else []))
    rows = join(ours_rows(ours), torch_rows(theirs))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=2)
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
