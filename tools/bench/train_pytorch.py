#!/usr/bin/env python3
"""GQATrader training throughput in PyTorch: the comparison for `attnlab bench model --device cuda`.

The same model as trading/models/gqa_trader.{h,cpp} (pre-norm blocks: x + attn(norm1(x)), then
h + ff(norm2(h)) with ff = Linear, GELU, Dropout, Linear, Dropout; grouped-query attention with bias-free
q/k/v/out projections; learned positions; final LayerNorm; a Linear head on the last position; MSE
loss) and the same training step as attnlab's trainer (autocast forward + loss, backward, unscale,
clip_grad_norm_(1.0), AdamW; f16 with a GradScaler). Default config: issue 8's seed config (d_model 256,
8 heads, 2 KV heads, 6 layers, d_ff 1024, seq 512, batch 32, 25 input features, 5 outputs).

    python3 tools/bench/train_pytorch.py                      # f32, bf16, f16 on cuda
    python3 tools/bench/train_pytorch.py --precision bf16 --steps 50 --json
    python3 tools/bench/train_pytorch.py --compile            # torch.compile the model as well

Prints one row per precision: step ms, samples/s, peak GiB (torch.cuda.max_memory_allocated).
"""
import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - the device machine has torch
    torch = None


def build_model(a):
    class GQA(nn.Module):
        def __init__(self):
            super().__init__()
            self.h, self.hkv, self.d = a.n_heads, a.n_kv_heads, a.d_model // a.n_heads
            self.q_proj = nn.Linear(a.d_model, self.h * self.d, bias=False)
            self.k_proj = nn.Linear(a.d_model, self.hkv * self.d, bias=False)
            self.v_proj = nn.Linear(a.d_model, self.hkv * self.d, bias=False)
            self.out_proj = nn.Linear(a.d_model, a.d_model, bias=False)
            self.p = a.dropout

        def forward(self, x):
            B, T, C = x.shape
            q = self.q_proj(x).view(B, T, self.h, self.d).transpose(1, 2)
            k = self.k_proj(x).view(B, T, self.hkv, self.d).transpose(1, 2)
            v = self.v_proj(x).view(B, T, self.hkv, self.d).transpose(1, 2)
            # each KV head serves H / Hkv query heads (repeat: works on every torch 2.x)
            k = k.repeat_interleave(self.h // self.hkv, dim=1)
            v = v.repeat_interleave(self.h // self.hkv, dim=1)
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0)
            return self.out_proj(o.transpose(1, 2).reshape(B, T, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = GQA()
            self.norm1 = nn.LayerNorm(a.d_model)
            self.norm2 = nn.LayerNorm(a.d_model)
            self.ff = nn.Sequential(nn.Linear(a.d_model, a.d_ff), nn.GELU(), nn.Dropout(a.dropout),
                                    nn.Linear(a.d_ff, a.d_model), nn.Dropout(a.dropout))

        def forward(self, x):
            h = x + self.attention(self.norm1(x))
            return h + self.ff(self.norm2(h))

    class GQATrader(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_proj = nn.Linear(a.features, a.d_model)
            self.pos_encoding = nn.Parameter(torch.randn(1, a.seq, a.d_model) * 0.02)
            self.layers = nn.ModuleList([Block() for _ in range(a.n_layers)])
            self.norm = nn.LayerNorm(a.d_model)
            self.head = nn.Linear(a.d_model, a.outputs)
            for m in self.modules():  # the seed's _init_weights
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

        def forward(self, x):
            h = self.input_proj(x) + self.pos_encoding[:, : x.shape[1]]
            for layer in self.layers:
                h = layer(h)
            return self.head(self.norm(h)[:, -1])

    return GQATrader()


def run(a, precision):
    dev = torch.device(a.device)
    torch.manual_seed(1)
    model = build_model(a).to(dev)
    model.train()
    fwd = torch.compile(model) if a.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev.type == "cuda")
    low = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[precision]
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "f16")
    g = torch.Generator().manual_seed(7)
    x = torch.randn(a.batch, a.seq, a.features, generator=g).to(dev)
    y = torch.randn(a.batch, a.outputs, generator=g).to(dev)
    params = list(model.parameters())

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=low or torch.bfloat16, enabled=low is not None):
            loss = F.mse_loss(fwd(x).float(), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(opt)
        scaler.update()
        return loss

    for _ in range(a.warmup):
        step()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    sync()
    s = (time.perf_counter() - t0) / a.steps
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0
    return {"framework": "pytorch " + torch.__version__, "device": str(dev),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "precision": precision, "compile": a.compile, "d_model": a.d_model, "n_heads": a.n_heads,
            "n_kv_heads": a.n_kv_heads, "n_layers": a.n_layers, "d_ff": a.d_ff, "seq": a.seq, "batch": a.batch,
            "params": sum(p.numel() for p in params), "step_ms": s * 1e3,
            "train_samples_per_s": a.batch / s, "peak_bytes": peak, "last_loss": float(loss)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    p.add_argument("--precision", default="all", choices=["all", "f32", "bf16", "f16"])
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-heads", type=int, default=8)
    p.add_argument("--n-kv-heads", type=int, default=2)
    p.add_argument("--n-layers", type=int, default=6)
    p.add_argument("--d-ff", type=int, default=1024)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--features", type=int, default=25)
    p.add_argument("--outputs", type=int, default=5)
    p.add_argument("--dropout", type=float, default=0.0,
                   help="as attnlab's bench (its GPU attention has no dropout yet; TraderConfig's default is 0.1)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls in f32 (attnlab uses none)")
    p.add_argument("--json", action="store_true", help="print JSON rows only")
    a = p.parse_args(argv)
    if torch is None:
        print("train_pytorch.py: skipped: PyTorch is not installed", file=sys.stderr)
        return 0
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("train_pytorch.py: skipped: no CUDA device", file=sys.stderr)
        return 0
    assert a.d_model % a.n_heads == 0 and a.n_heads % a.n_kv_heads == 0, "bad head counts"
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    rows = [run(a, pr) for pr in (["f32", "bf16", "f16"] if a.precision == "all" else [a.precision])]
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"GQATrader training throughput, PyTorch {torch.__version__} on {rows[0]['gpu']} "
              f"(C{a.d_model} H{a.n_heads} Hkv{a.n_kv_heads} L{a.n_layers} T{a.seq} B{a.batch}; "
              f"{a.steps} timed steps after {a.warmup} warm-up)")
        print(f"{'precision':>9} {'params':>9} {'step ms':>9} {'samples/s':>10} {'peak GiB':>9}")
        for r in rows:
            print(f"{r['precision']:>9} {r['params']:>9} {r['step_ms']:>9.2f} {r['train_samples_per_s']:>10.1f} "
                  f"{r['peak_bytes'] / 2**30:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
