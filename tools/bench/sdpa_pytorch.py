#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention on the same sweep as `attnlab bench attention --device cuda`.

Same conventions as tools/bench/bench_attention_cuda.cpp (flash-attention's benchmark): batch x seq =
16k tokens, hidden 2048 (nheads = 2048 / headdim), head dim 64 and 128, seq 512 .. 16k, causal off and
on, bf16; forward FLOPs 4*B*S^2*H*D (halved when causal), backward 2.5x forward. Each figure is the mean
of `reps` calls between two CUDA events after two warm-up calls; backward is timed alone
(torch.autograd.grad from a retained graph). Prints the same table columns, or with --json the same
JSON keys, so the two outputs can be put side by side:

    build/tools/attnlab bench attention --device cuda --json > attnlab.json
    python3 tools/bench/sdpa_pytorch.py --json > sdpa.json

--backend picks PyTorch's SDPA kernel (default: let PyTorch choose, which is FlashAttention-2 for bf16
on sm80/sm90; 'cudnn' for the cuDNN kernel where the PyTorch build has it). Needs PyTorch with CUDA.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    ap.add_argument("--quick", action="store_true", help="a reduced sweep (smoke test)")
    ap.add_argument("--device", default="cuda", help="cuda or cuda:N")
    ap.add_argument("--backend", default="auto", choices=["auto", "flash", "efficient", "cudnn", "math"])
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        print("sdpa_pytorch: skipped: no GPU (torch.cuda.is_available() is False)")
        return 0
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device)

    backends = {}
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                    "math": SDPBackend.MATH}
        if hasattr(SDPBackend, "CUDNN_ATTENTION"):
            backends["cudnn"] = SDPBackend.CUDNN_ATTENTION
    except ImportError:
        sdpa_kernel = None
    if args.backend != "auto" and args.backend not in backends:
        print(f"sdpa_pytorch: backend {args.backend} is not available in this PyTorch", file=sys.stderr)
        return 2

    def context():
        if args.backend == "auto":
            import contextlib
            return contextlib.nullcontext()
        return sdpa_kernel(backends[args.backend])

    tokens, hidden = 16384, 2048
    seqs = [512, 2048] if args.quick else [512, 1024, 2048, 4096, 8192, 16384]
    reps = 3 if args.quick else 10
    dtype = torch.bfloat16

    def time_ms(fn):
        fn(), fn()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(stop) / reps

    rows = []
    for causal in (False, True):
        for D in (64, 128):
            for S in seqs:
                B, H = tokens // S, hidden // D
                # [B, H, S, D], the layout SDPA takes; attnlab's [B, S, H, D] is the same maths.
                q, k, v = (torch.randn(B, H, S, D, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
                dout = torch.randn(B, H, S, D, device=device, dtype=dtype)
                with context():
                    fwd_ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
                    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    bwd_ms = time_ms(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True))
                del out, q, k, v, dout
                fwd_flops = 4.0 * B * S * S * H * D / (2 if causal else 1)
                bwd_flops = 2.5 * fwd_flops
                rows.append({"impl": f"torch-sdpa-{args.backend}", "device": name, "dtype": "bf16", "causal": causal,
                             "headdim": D, "seqlen": S, "batch": B, "nheads": H, "fwd_ms": fwd_ms,
                             "fwd_tflops": fwd_flops / (fwd_ms * 1e-3) / 1e12, "bwd_ms": bwd_ms,
                             "bwd_tflops": bwd_flops / (bwd_ms * 1e-3) / 1e12})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = ["device", "dtype", "causal", "D", "seq", "batch", "fwd ms", "fwd TFLOP/s", "bwd ms", "bwd TFLOP/s"]
    cells = [[r["device"], r["dtype"], "yes" if r["causal"] else "no", str(r["headdim"]), str(r["seqlen"]),
              str(r["batch"]), f"{r['fwd_ms']:.3f}", f"{r['fwd_tflops']:.1f}", f"{r['bwd_ms']:.3f}",
              f"{r['bwd_tflops']:.1f}"] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print(f"attention on {name}: torch.nn.functional.scaled_dot_product_attention ({args.backend}), "
          f"16k tokens, hidden 2048; torch {torch.__version__}")
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
