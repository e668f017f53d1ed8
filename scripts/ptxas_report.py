#!/usr/bin/env python3
"""Registers, spills and static shared memory of every CUDA kernel in the given files, per architecture.

Compiles each file once per architecture with `-Xptxas -v` (the flags of a configured CUDA build
directory: its include list and defines) and prints one Markdown table row per kernel instantiation,
so resource figures in docs/cuda_attention.md can be regenerated after a kernel change:

    python3 scripts/ptxas_report.py build-cuda kernels/cuda/flash_attention_fast.cu [more.cu ...] [--arch 80 --arch 90]

A kernel that spills is marked SPILLS; the exit status is 1 when any does.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile


def demangled_short(name):
    """'..flash_fast_forward_kernelI13__nv_bfloat16Li128EE..' -> 'flash_fast_forward_kernel<bf16, 128>'."""
    m = re.search(r"\d+((?:flash|reference|convert|decode)\w*?kernel)(I.*)?$", name)
    if not m:
        return name
    base, args = m.group(1), m.group(2) or ""
    parts = []
    for t, short in (("13__nv_bfloat16", "bf16"), ("6__half", "f16")):
        if t in args:
            parts.append(short)
    if re.match(r"If", args):
        parts.append("f32")
    parts += re.findall(r"Li(\d+)E", args)
    return f"{base}<{', '.join(parts)}>" if parts else base


def report(build, files, archs):
    rsp = os.path.abspath(os.path.join(build, "kernels", "CMakeFiles", "attnlab_kernels.dir", "includes_CUDA.rsp"))
    if not os.path.exists(rsp):
        sys.exit(f"ptxas_report: {rsp} not found (configure a CUDA build first: make build BUILD={build} CUDA=ON)")
    nvcc = "/usr/local/cuda/bin/nvcc"
    rows, spills = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            for arch in archs:
                cmd = [nvcc, "-DATTNLAB_WITH_CUDA=1", "--options-file", rsp, "-O3", "-DNDEBUG",
                       f"--generate-code=arch=compute_{arch},code=sm_{arch}", "-lineinfo", "--expt-relaxed-constexpr",
                       "-std=c++17", "-Xptxas", "-v", "-c", os.path.abspath(f), "-o", os.path.join(tmp, "k.o")]
                out = subprocess.run(cmd, cwd=os.path.join(build, "kernels"), capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(f"ptxas_report: nvcc failed on {f} for sm_{arch}:\n{out.stderr}")
                for entry in re.split(r"Compiling entry function '", out.stderr)[1:]:
                    name = entry.split("'")[0]
                    regs = re.search(r"Used (\d+) registers", entry)
                    sp = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", entry)
                    smem = re.search(r"(\d+) bytes smem", entry)
                    spilled = sp and (int(sp.group(2)) or int(sp.group(3)))
                    spills += bool(spilled)
                    rows.append((os.path.basename(f), f"sm_{arch}", demangled_short(name), regs.group(1) if regs else "?",
                                 f"{sp.group(2)}/{sp.group(3)}" if sp else "?", smem.group(1) if smem else "0",
                                 "SPILLS" if spilled else ""))
    print("| file | arch | kernel | registers | spill stores/loads (bytes) | static smem (bytes) | |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in sorted(set(rows)):
        print("| " + " | ".join(r) + " |")
    return 1 if spills else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", help="a configured CUDA build directory (e.g. build-cuda)")
    ap.add_argument("files", nargs="+", help="kernels/cuda/*.cu files")
    ap.add_argument("--arch", action="append", help="compute capability, e.g. 90 (repeatable; default 80 and 90)")
    args = ap.parse_args()
    return report(args.build, args.files, args.arch or ["80", "90"])


if __name__ == "__main__":
    sys.exit(main())
