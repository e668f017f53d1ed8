#!/usr/bin/env python3
"""Lane-level emulation of the fast attention tier (Variant::fast), runnable without a GPU.

flash_fast_forward_kernel (kernels/cuda/flash_attention_fast.cu), flash_fast_delta_kernel,
flash_fast_dkdv_kernel and flash_fast_dq_kernel (kernels/cuda/flash_attention_fast_bwd.cu) are
transcribed here statement for statement, on top of the helpers of kernels/cuda/flash_attention_fast.cuh
(same names: swz, ring_start, ring_next, load_tile_async, load_kv_async, a_frag, a_frag_trans,
mma_abt, mma_ab, c_to_a, store_c_to_tile, store_a_to_tile, store_rows_from_tile, store_q_rows). A
thread block runs as one Python generator per warp, each resumed up to its next __syncthreads (a
`yield`); the machine underneath is modelled from the PTX ISA:

  * shared memory is byte-addressed, with the block's real size (an access outside it fails);
  * ldmatrix.x4 (.trans) takes each 8x8 matrix's row addresses from lanes 8m..8m+7 and hands every
    thread its elements; mma.m16n8k16 (mma_kernels_sim.mma) checks that every A/B element is supplied
    exactly once;
  * cp.async writes are pending from issue until the issuing thread's cp.async.wait_group retires
    their group (commit_group / wait_group N counted per thread);
  * a hazard checker (what compute-sanitizer's racecheck reports): two accesses to a byte from
    different threads, at least one a write, must be separated by a __syncthreads (or, within one
    warp, a __syncwarp); any access to a pending cp.async destination fails; so does a read of bytes
    never written, and a warp-uniform barrier count is required (no divergent __syncthreads);
  * bank conflicts: every ldmatrix phase, 16-byte access quarter-warp and 32-bit store warp must hit
    distinct banks (the swizzle's claim); the count of conflicts is asserted to be zero.

O, LSE, dQ (atomic and deterministic paths), dK and dV are compared with the direct formulas in
double precision (no 16-bit rounding: this checks indexing, pipelining, synchronisation, masking,
dropout placement and register reuse — not precision, which only the GPU tests can). Dropout uses a
stand-in mask (a hash of (h, i, j)), the same in the kernels and in the reference.

    python3 tests/kernels/cuda/fast_kernels_sim.py           # every case (~40 s of CPU, pure Python)
    python3 tests/kernels/cuda/fast_kernels_sim.py --quick   # one small forward and backward case (ctest)

Keep it in step with the kernels when their indexing or synchronisation changes. It does not replace
the GPU tests (tests/kernels/cuda/test_flash_attention.cpp).
"""
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mma_kernels_sim import mma  # noqa: E402  mma.m16n8k16 by its PTX definition

NEG = -math.inf
LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453


class SimError(AssertionError):
    pass


# ---- the machine ---------------------------------------------------------------------------------
class Smem:
    """One block's shared memory: values per 2-byte granule, and for each granule its last write and the
    reads since, to find hazards. A thread is (warp, lane); lane 'all' is a warp-collective access
    (ldmatrix)."""

    def __init__(self, nbytes, nwarps):
        self.nbytes = nbytes
        self.val = {}
        self.meta = {}  # granule -> [writer, syncthreads epoch, syncwarp epoch, {reader: (epoch, wepoch)}]
        self.epoch = 0
        self.wepoch = [0] * nwarps
        self.pending = {}  # granule -> issuing thread
        self.groups = {}   # thread -> committed groups, oldest first: [[(granule, value), ...], ...]
        self.open = {}     # thread -> copies issued since its last commit
        self.conflicts = 0

    def _ordered(self, t0, e0, w0, t1):
        if t0 == t1:
            return True
        if self.epoch > e0:
            return True
        if t0[0] != t1[0]:
            return False
        if t0[1] == 'all' and t1[1] == 'all':
            return True  # two collective operations of one warp run in program order
        return self.wepoch[t0[0]] > w0  # lanes of one warp: ordered by a __syncwarp

    def _granule(self, addr):
        if not (0 <= addr < self.nbytes) or addr % 2:
            raise SimError(f"shared access at byte {addr} outside the block's {self.nbytes} bytes (or odd)")
        return addr // 2

    def write(self, addr, value, thr, pending_ok=False):
        g = self._granule(addr)
        if g in self.pending and not pending_ok:
            raise SimError(f"write by {thr} to byte {addr} while a cp.async by {self.pending[g]} is in flight")
        m = self.meta.get(g)
        if m is not None:
            if not self._ordered(m[0], m[1], m[2], thr):
                raise SimError(f"write-after-write race at byte {addr}: {m[0]} then {thr} without a barrier")
            for r, (e, w) in m[3].items():
                if not self._ordered(r, e, w, thr):
                    raise SimError(f"write-after-read race at byte {addr}: read by {r}, written by {thr}")
        self.meta[g] = [thr, self.epoch, self.wepoch[thr[0]], {}]
        self.val[g] = value

    def read(self, addr, thr):
        g = self._granule(addr)
        if g in self.pending:
            raise SimError(f"read by {thr} of byte {addr} before the cp.async of {self.pending[g]} completed")
        m = self.meta.get(g)
        if m is None:
            raise SimError(f"read by {thr} of byte {addr}, never written")
        if not self._ordered(m[0], m[1], m[2], thr):
            raise SimError(f"read-after-write race at byte {addr}: written by {m[0]}, read by {thr}")
        m[3][thr] = (self.epoch, self.wepoch[thr[0]])
        return self.val[g]

    # cp.async.cg 16 bytes: granule values (8 of them), None = zero fill
    def cp_async16(self, addr, values, thr):
        if addr % 16:
            raise SimError(f"cp.async destination {addr} is not 16-byte aligned")
        for k in range(8):
            g = self._granule(addr + 2 * k)
            if g in self.pending:
                raise SimError(f"cp.async by {thr} to byte {addr + 2 * k} already pending for {self.pending[g]}")
            m = self.meta.get(g)
            if m is not None:  # the copy may land at once: it must be ordered after every earlier access
                if not self._ordered(m[0], m[1], m[2], thr):
                    raise SimError(f"cp.async by {thr} over byte {addr + 2 * k} written by {m[0]} without a barrier")
                for r, (e, w) in m[3].items():
                    if not self._ordered(r, e, w, thr):
                        raise SimError(f"cp.async by {thr} over byte {addr + 2 * k} still being read by {r}")
            self.pending[g] = thr
            self.open.setdefault(thr, []).append((g, 0.0 if values is None else values[k]))

    def commit(self, thr):
        self.groups.setdefault(thr, []).append(self.open.pop(thr, []))

    def wait_group(self, n, thr):
        q = self.groups.get(thr, [])
        while len(q) > n:
            for g, v in q.pop(0):
                del self.pending[g]
                self.write(2 * g, v, thr, pending_ok=True)

    def syncthreads(self):
        self.epoch += 1

    def syncwarp(self, w):
        self.wepoch[w] += 1

    def banks(self, addrs, width):
        """One shared-memory wavefront's addresses (width bytes each): count the extra wavefronts."""
        used = {}
        for a in addrs:
            for b in range(a // 4, (a + width - 1) // 4 + 1):
                used.setdefault(b % 32, set()).add(b)
        self.conflicts += max(len(v) for v in used.values()) - 1


def run_block(nwarps, sm, warp_fn):
    """Runs one block: every warp up to its next __syncthreads, then the barrier, until all return."""
    gens = [warp_fn(w) for w in range(nwarps)]
    while True:
        done = []
        for gen in gens:
            try:
                next(gen)
                done.append(False)
            except StopIteration:
                done.append(True)
        if all(done):
            break
        if any(done):
            raise SimError("divergent __syncthreads: some warps returned while others wait at a barrier")
        sm.syncthreads()
    leftover = [g for g in sm.pending]
    if leftover:
        raise SimError(f"{len(leftover)} bytes of cp.async still in flight when the block exits")


def lane_threads(warp):
    return [(warp, lane) for lane in range(32)]


def cp_async_commit(sm, warp):
    for t in lane_threads(warp):
        sm.commit(t)


def cp_async_wait(sm, warp, n):
    for t in lane_threads(warp):
        sm.wait_group(n, t)


# ---- flash_attention_fast.cuh --------------------------------------------------------------------
def swz(COLS, row, col):
    assert COLS % 64 == 0
    return row * COLS + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7)


def ring_start(sm, warp, kStages, n, load):
    for t in range(kStages - 1):
        if t < n:
            load(t)
        cp_async_commit(sm, warp)


def ring_next(sm, warp, kStages, t, n, load):
    """A generator: `yield from ring_next(...)` (it contains the __syncthreads)."""
    cp_async_wait(sm, warp, kStages - 2)
    yield  # __syncthreads
    if t + kStages - 1 < n:
        load(t + kStages - 1)
    cp_async_commit(sm, warp)


def load_tile_async(sm, tile, COLS, ROWS, THREADS, row, warp):
    """tile: element offset (16-bit units); row(r) -> list of COLS values or None (zeros)."""
    chunks = COLS // 8
    assert ROWS * chunks % THREADS == 0
    for it in range(ROWS * chunks // THREADS):
        addrs = []
        for lane in range(32):
            e = it * THREADS + 32 * warp + lane
            r, ch = e // chunks, e % chunks
            src = row(r)
            dst = 2 * (tile + swz(COLS, r, 8 * ch))
            sm.cp_async16(dst, None if src is None else src[8 * ch:8 * ch + 8], (warp, lane))
            addrs.append(dst)
        for q in range(4):
            sm.banks(addrs[8 * q:8 * q + 8], 16)


def load_kv_async(sm, k_tile, v_tile, D, ROWS, THREADS, P, g, r0, warp):
    load_tile_async(sm, k_tile, D, ROWS, THREADS, lambda r: P.K[g][r0 + r] if r0 + r < P.Sk else None, warp)
    load_tile_async(sm, v_tile, D, ROWS, THREADS, lambda r: P.V[g][r0 + r] if r0 + r < P.Sk else None, warp)


def load_q_async(sm, tile, D, ROWS, THREADS, P, h, r0, warp):
    load_tile_async(sm, tile, D, ROWS, THREADS, lambda r: P.Q[h][r0 + r] if r0 + r < P.Sq else None, warp)


def load_rows_async(sm, tile, D, ROWS, THREADS, P, x, h, r0, warp):
    load_tile_async(sm, tile, D, ROWS, THREADS, lambda r: x[h][r0 + r] if r0 + r < P.Sq else None, warp)


def ldsm_x4(sm, addrs, warp, trans=False):
    out = [[None] * 4 for _ in range(32)]
    for mi in range(4):
        rows = addrs[8 * mi:8 * mi + 8]
        if any(a % 16 for a in rows):
            raise SimError("ldmatrix row address not 16-byte aligned")
        sm.banks(rows, 16)
        M = [[sm.read(a + 2 * c, (warp, 'all')) for c in range(8)] for a in rows]
        for lane in range(32):
            gr, tg = lane >> 2, lane & 3
            out[lane][mi] = (M[2 * tg][gr], M[2 * tg + 1][gr]) if trans else (M[gr][2 * tg], M[gr][2 * tg + 1])
    return out


def a_frag(sm, tile, COLS, m0, kt, warp):
    return ldsm_x4(sm, [2 * (tile + swz(COLS, m0 + (l & 7) + 8 * ((l >> 3) & 1), 16 * kt + 8 * (l >> 4)))
                        for l in range(32)], warp)


def a_frag_trans(sm, tile, COLS, m0, kt, warp):
    return ldsm_x4(sm, [2 * (tile + swz(COLS, 16 * kt + (l & 7) + 8 * (l >> 4), m0 + 8 * ((l >> 3) & 1)))
                        for l in range(32)], warp, trans=True)


def _two_tiles(c, np_, a, b):
    c[2 * np_] = mma(c[2 * np_], a, [b[l][0] for l in range(32)], [b[l][1] for l in range(32)])
    c[2 * np_ + 1] = mma(c[2 * np_ + 1], a, [b[l][2] for l in range(32)], [b[l][3] for l in range(32)])


def mma_abt(sm, c, K, N, afrag, tile, n0, warp):
    assert N % 2 == 0 and K % 16 == 0
    for kt in range(K // 16):
        a = afrag(kt)
        for np_ in range(N // 2):
            b = ldsm_x4(sm, [2 * (tile + swz(K, n0 + 16 * np_ + (l & 7) + 8 * (l >> 4), 16 * kt + 8 * ((l >> 3) & 1)))
                             for l in range(32)], warp)
            _two_tiles(c, np_, a, b)


def mma_ab(sm, c, COLS, KS, N, afrag, tile, k0, n0, warp):
    assert N % 2 == 0
    for kk in range(KS):
        a = afrag(kk)
        for np_ in range(N // 2):
            b = ldsm_x4(sm, [2 * (tile + swz(COLS, k0 + 16 * kk + (l & 7) + 8 * ((l >> 3) & 1), n0 + 16 * np_ + 8 * (l >> 4)))
                             for l in range(32)], warp, trans=True)
            _two_tiles(c, np_, a, b)


def c_to_a(c, KS):
    return [[[(c[2 * kk][l][0], c[2 * kk][l][1]), (c[2 * kk][l][2], c[2 * kk][l][3]),
              (c[2 * kk + 1][l][0], c[2 * kk + 1][l][1]), (c[2 * kk + 1][l][2], c[2 * kk + 1][l][3])]
             for l in range(32)] for kk in range(KS)]


def store_c_to_tile(sm, tile, COLS, c, N, m0, f0, f1, warp):
    """f0, f1: per-lane scale of rows gr and gr + 8."""
    for nt in range(N):
        for half, f in ((0, f0), (1, f1)):
            addrs = []
            for lane in range(32):
                gr, tg = lane >> 2, lane & 3
                a = 2 * (tile + swz(COLS, m0 + gr + 8 * half, 8 * nt + 2 * tg))
                assert a % 4 == 0
                sm.write(a, c[nt][lane][2 * half] * f[lane], (warp, lane))
                sm.write(a + 2, c[nt][lane][2 * half + 1] * f[lane], (warp, lane))
                addrs.append(a)
            sm.banks(addrs, 4)


def store_a_to_tile(sm, tile, COLS, a, KS, m0, k0, warp):
    for kk in range(KS):
        for q in range(4):
            addrs = []
            for lane in range(32):
                gr, tg = lane >> 2, lane & 3
                ad = 2 * (tile + swz(COLS, m0 + gr + 8 * (q & 1), k0 + 16 * kk + 8 * (q >> 1) + 2 * tg))
                sm.write(ad, a[kk][lane][q][0], (warp, lane))
                sm.write(ad + 2, a[kk][lane][q][1], (warp, lane))
                addrs.append(ad)
            sm.banks(addrs, 4)


def store_rows_from_tile(sm, tile, COLS, m0, dst, warp):
    """dst(r) -> (list, offset) to receive COLS values, or None."""
    chunks = COLS // 8
    for base in range(0, 16 * chunks, 32):
        addrs = []
        for lane in range(32):
            e = base + lane
            if e >= 16 * chunks:
                continue
            r, ch = e // chunks, e % chunks
            a = 2 * (tile + swz(COLS, m0 + r, 8 * ch))
            addrs.append(a)
            d = dst(r)
            vals = [sm.read(a + 2 * k, (warp, lane)) for k in range(8)]
            if d is not None:
                out, off = d
                for k in range(8):
                    if out[off + 8 * ch + k] is not None:
                        raise SimError("a global output element written twice")
                    out[off + 8 * ch + k] = vals[k]
        for q in range(0, len(addrs), 8):
            sm.banks(addrs[q:q + 8], 16)


def store_q_rows(sm, tile, D, m0, P, x, h, r0, warp):
    store_rows_from_tile(sm, tile, D, m0, lambda r: (x[h][r0 + m0 + r], 0) if r0 + m0 + r < P.Sq else None, warp)


def exp2(x):
    return 2.0 ** x  # 2^-inf = 0, as ex2.approx.ftz


# ---- the problem ---------------------------------------------------------------------------------
class Problem:
    """B = 1: Q [H][Sq][D], K, V [Hkv][Sk][D], dO [H][Sq][D]; z(h, i, j) the dropout factor."""

    def __init__(self, Sq, Sk, D, H, Hkv, causal, dropout, seed):
        rnd = random.Random(seed)
        R = lambda n: [[rnd.uniform(-1, 1) for _ in range(D)] for _ in range(n)]
        self.Sq, self.Sk, self.D, self.H, self.Hkv, self.G = Sq, Sk, D, H, Hkv, H // Hkv
        self.causal, self.scale = causal, 2 / math.sqrt(D)
        self.Q = [R(Sq) for _ in range(H)]
        self.K = [R(Sk) for _ in range(Hkv)]
        self.V = [R(Sk) for _ in range(Hkv)]
        self.dO = [R(Sq) for _ in range(H)]
        self.dropout = dropout

    def visible(self, i, j):
        return (not self.causal) or j <= i + (self.Sk - self.Sq)

    def key_end(self, i_last):
        return max(0, min(self.Sk, i_last + (self.Sk - self.Sq) + 1)) if self.causal else self.Sk

    def first_query(self, j):
        return max(0, j - (self.Sk - self.Sq)) if self.causal else 0

    def z(self, h, i, j):
        if not self.dropout:
            return 1.0
        return 0.0 if (h * 7919 + i * 104729 + j * 1299709) % 5 == 0 else 1.25


def direct(P):
    """O, LSE, dQ, dK, dV by the formulas (double precision), with the same dropout factors."""
    Sq, Sk, D, G = P.Sq, P.Sk, P.D, P.G
    O = [[[0.0] * D for _ in range(Sq)] for _ in range(P.H)]
    LSE = [[NEG] * Sq for _ in range(P.H)]
    dQ = [[[0.0] * D for _ in range(Sq)] for _ in range(P.H)]
    dK = [[[0.0] * D for _ in range(Sk)] for _ in range(P.Hkv)]
    dV = [[[0.0] * D for _ in range(Sk)] for _ in range(P.Hkv)]
    for h in range(P.H):
        g = h // G
        for i in range(Sq):
            sc = [P.scale * sum(P.Q[h][i][d] * P.K[g][j][d] for d in range(D)) if P.visible(i, j) else NEG
                  for j in range(Sk)]
            mx = max(sc)
            if mx == NEG:
                continue
            ex = [math.exp(x - mx) if x != NEG else 0.0 for x in sc]
            tot = sum(ex)
            p = [x / tot for x in ex]
            LSE[h][i] = mx + math.log(tot)
            O[h][i] = [sum(p[j] * P.z(h, i, j) * P.V[g][j][d] for j in range(Sk)) for d in range(D)]
            delta = sum(P.dO[h][i][d] * O[h][i][d] for d in range(D))
            for j in range(Sk):
                if p[j] == 0:
                    continue
                z = P.z(h, i, j)
                dp = sum(P.dO[h][i][d] * P.V[g][j][d] for d in range(D))
                ds = p[j] * (z * dp - delta)
                for d in range(D):
                    dQ[h][i][d] += P.scale * ds * P.K[g][j][d]
                    dK[g][j][d] += P.scale * ds * P.Q[h][i][d]
                    dV[g][j][d] += p[j] * z * P.dO[h][i][d]
    return O, LSE, dQ, dK, dV


# ---- flash_attention_fast.cu ---------------------------------------------------------------------
def fast_forward(P, kStages=2):
    kWarps = 8
    kThreads, kBr, kBc = 32 * kWarps, 16 * kWarps, 64
    Sq, Sk, D = P.Sq, P.Sk, P.D
    O = [[[None] * D for _ in range(Sq)] for _ in range(P.H)]
    LSE = [[None] * Sq for _ in range(P.H)]
    nblocks = (Sq + kBr - 1) // kBr
    kTile, kStage = kBc * D, 2 * kBc * D
    assert kBr * D <= kStage
    sl2 = P.scale * LOG2E
    conflicts = 0
    for h in range(P.H):
        for bx in range(nblocks):
            sm = Smem(kStages * 2 * kBc * D * 2, kWarps)

            def warp_fn(warp, h=h, bx=bx, sm=sm):
                g = h // P.G
                q0 = (nblocks - 1 - bx if P.causal else bx) * kBr
                m0 = 16 * warp
                row = [[q0 + m0 + (l >> 2), q0 + m0 + (l >> 2) + 8] for l in range(32)]
                key_end = P.key_end(min(q0 + kBr, Sq) - 1)
                n_tiles = (key_end + kBc - 1) // kBc
                stage = lambda t: (t % kStages) * kStage

                def load_kv(t):
                    load_kv_async(sm, stage(t), stage(t) + kTile, D, kBc, kThreads, P, g, t * kBc, warp)

                qs = (kStages - 1) * kStage
                load_q_async(sm, qs, D, kBr, kThreads, P, h, q0, warp)
                ring_start(sm, warp, kStages, n_tiles, load_kv)
                cp_async_wait(sm, warp, kStages - 2)
                yield  # __syncthreads
                qa = [a_frag(sm, qs, D, m0, kt, warp) for kt in range(D // 16)]

                oacc = [[[0.0] * 4 for _ in range(32)] for _ in range(D // 8)]
                m = [[NEG, NEG] for _ in range(32)]
                lsum = [[0.0, 0.0] for _ in range(32)]
                for t in range(n_tiles):
                    yield from ring_next(sm, warp, kStages, t, n_tiles, load_kv)
                    ks = stage(t)
                    vs = ks + kTile
                    k0 = t * kBc

                    s = [[[0.0] * 4 for _ in range(32)] for _ in range(kBc // 8)]
                    mma_abt(sm, s, D, kBc // 8, lambda kt: qa[kt], ks, 0, warp)

                    if k0 + kBc > Sk or (P.causal and k0 + kBc - 1 > q0 + (Sk - Sq)):
                        for nt in range(kBc // 8):
                            for l in range(32):
                                for e in range(4):
                                    j = k0 + 8 * nt + 2 * (l & 3) + (e & 1)
                                    if j >= Sk or not P.visible(row[l][e >> 1], j):
                                        s[nt][l][e] = NEG

                    for rr in range(2):
                        mxl = [max([m[l][rr]] + [max(s[nt][l][2 * rr], s[nt][l][2 * rr + 1]) for nt in range(kBc // 8)])
                               for l in range(32)]
                        mxq = [max(mxl[(l & ~3) + q] for q in range(4)) for l in range(32)]  # shfl_xor 1, 2
                        for l in range(32):
                            mx = mxq[l]
                            mx_scaled = 0.0 if mx == NEG else mx * sl2
                            alpha = exp2(m[l][rr] * sl2 - mx_scaled)
                            m[l][rr] = mx
                            lsum[l][rr] *= alpha
                            for nd in range(D // 8):
                                oacc[nd][l][2 * rr] *= alpha
                                oacc[nd][l][2 * rr + 1] *= alpha
                            for nt in range(kBc // 8):
                                p0 = exp2(s[nt][l][2 * rr] * sl2 - mx_scaled)
                                p1 = exp2(s[nt][l][2 * rr + 1] * sl2 - mx_scaled)
                                lsum[l][rr] += p0 + p1
                                j = k0 + 8 * nt + 2 * (l & 3)
                                s[nt][l][2 * rr] = p0 * P.z(h, row[l][rr], j)
                                s[nt][l][2 * rr + 1] = p1 * P.z(h, row[l][rr], j + 1)

                    pa = c_to_a(s, kBc // 16)
                    mma_ab(sm, oacc, D, kBc // 16, D // 8, lambda kk: pa[kk], vs, 0, 0, warp)

                inv = [[0.0, 0.0] for _ in range(32)]
                for rr in range(2):
                    lq = [sum(lsum[(l & ~3) + q][rr] for q in range(4)) for l in range(32)]
                    for l in range(32):
                        inv[l][rr] = 1.0 / lq[l] if lq[l] > 0 else 0.0
                        i = row[l][rr]
                        if (l & 3) == 0 and i < Sq:
                            assert LSE[h][i] is None
                            LSE[h][i] = (m[l][rr] * sl2 + math.log2(lq[l])) * LN2 if lq[l] > 0 else NEG
                os_ = stage(n_tiles)
                store_c_to_tile(sm, os_, D, oacc, D // 8, m0, [inv[l][0] for l in range(32)],
                                [inv[l][1] for l in range(32)], warp)
                sm.syncwarp(warp)
                store_q_rows(sm, os_, D, m0, P, O, h, q0, warp)

            run_block(kWarps, sm, warp_fn)
            conflicts += sm.conflicts
    return O, LSE, conflicts


# ---- flash_attention_fast_bwd.cu -----------------------------------------------------------------
def fast_row_stats(P, O, LSE, kBrKV=64):
    """flash_fast_delta_kernel: Delta and -LSE log2 e per row of [B = 1, sq_pad, H], one 16-byte chunk per
    thread, the row's D / 8 lanes reduced by shuffle-xor; padded rows get 0 and -inf."""
    kThreads, chunks = 256, P.D // 8
    rows_per_block = kThreads // chunks
    sq_pad = (P.Sq + kBrKV - 1) // kBrKV * kBrKV
    delta = [[None] * sq_pad for _ in range(P.H)]
    neg_lse2 = [[None] * sq_pad for _ in range(P.H)]
    n_rows = sq_pad * P.H
    for block in range((n_rows + rows_per_block - 1) // rows_per_block):
        for w in range(kThreads // 32):
            part = []
            for lane in range(32):
                tid = 32 * w + lane
                row, ch = block * rows_per_block + tid // chunks, tid % chunks
                h, i = row % P.H, (row // P.H) % sq_pad
                real = row < n_rows and i < P.Sq
                part.append(sum(P.dO[h][i][8 * ch + e] * O[h][i][8 * ch + e] for e in range(8)) if real else 0.0)
            off = chunks // 2
            while off:  # __shfl_xor_sync within the row's lanes
                part = [part[l] + part[l ^ off] for l in range(32)]
                off //= 2
            for lane in range(32):
                tid = 32 * w + lane
                row, ch = block * rows_per_block + tid // chunks, tid % chunks
                if ch == 0 and row < n_rows:
                    h, i = row % P.H, (row // P.H) % sq_pad
                    l = LSE[h][i] if i < P.Sq else NEG
                    assert delta[h][i] is None
                    delta[h][i] = part[lane]
                    neg_lse2[h][i] = NEG if l == NEG else -l * LOG2E
    return delta, neg_lse2


def fast_dkdv(P, delta, neg_lse2, atomic_dq, kStages=2):
    kWarps = 8
    kThreads, kBcKV, kBrKV, kSub = 32 * kWarps, 16 * kWarps, 64, 32
    Sq, Sk, D = P.Sq, P.Sk, P.D
    kKV, kQ = kBcKV * D, kBrKV * D
    kStage = 2 * kQ + 2 * kBrKV * 2
    kDs = kBcKV * kBrKV
    nbytes = (2 * kKV + kStages * kStage + kDs) * 2
    dK = [[[None] * D for _ in range(Sk)] for _ in range(P.Hkv)]
    dV = [[[None] * D for _ in range(Sk)] for _ in range(P.Hkv)]
    dQacc = [[[0.0] * D for _ in range(Sq)] for _ in range(P.H)] if atomic_dq else None
    sl2 = P.scale * LOG2E
    conflicts = 0
    for g in range(P.Hkv):
        for bx in range((Sk + kBcKV - 1) // kBcKV):
            sm = Smem(nbytes, kWarps)

            def warp_fn(warp, g=g, bx=bx, sm=sm):
                j0 = bx * kBcKV
                ks, vs = 0, kKV
                ring = 2 * kKV
                dss = ring + kStages * kStage
                m0 = 16 * warp
                key = [[j0 + m0 + (l >> 2), j0 + m0 + (l >> 2) + 8] for l in range(32)]
                min_query = [[P.first_query(key[l][rr]) if key[l][rr] < Sk else math.inf for rr in range(2)]
                             for l in range(32)]
                i_start = (P.first_query(j0) // kBrKV) * kBrKV
                n_qt = (Sq - i_start + kBrKV - 1) // kBrKV if i_start < Sq else 0
                steps = P.G * n_qt
                qtile = lambda st: ring + (st % kStages) * kStage

                def load_step(st):
                    h, i0 = g * P.G + st // n_qt, i_start + (st % n_qt) * kBrKV
                    q = qtile(st)
                    load_q_async(sm, q, D, kBrKV, kThreads, P, h, i0, warp)
                    load_rows_async(sm, q + kQ, D, kBrKV, kThreads, P, P.dO, h, i0, warp)
                    rows = q + 2 * kQ  # f32 [2][kBrKV]: element offset of 16-bit units
                    for lane in range(32):
                        tid = 32 * warp + lane
                        if tid < 2 * kBrKV // 4:
                            which, c = tid // (kBrKV // 4), tid % (kBrKV // 4)
                            src = (delta if which else neg_lse2)[h][i0 + 4 * c:i0 + 4 * c + 4]
                            vals = [v for x in src for v in (x, 'hi')]  # f32 = two granules
                            sm.cp_async16(2 * (rows + 2 * (which * kBrKV + 4 * c)), vals, (warp, lane))

                def read_f32(elem_off, idx, lane):
                    a = 2 * (elem_off + 2 * idx)
                    sm.read(a + 2, (warp, lane))
                    return sm.read(a, (warp, lane))

                load_kv_async(sm, ks, vs, D, kBcKV, kThreads, P, g, j0, warp)
                ring_start(sm, warp, kStages, steps, load_step)

                dk_acc = [[[0.0] * 4 for _ in range(32)] for _ in range(D // 8)]
                dv_acc = [[[0.0] * 4 for _ in range(32)] for _ in range(D // 8)]

                for st in range(steps):
                    yield from ring_next(sm, warp, kStages, st, steps, load_step)
                    h, i0 = g * P.G + st // n_qt, i_start + (st % n_qt) * kBrKV
                    qs = qtile(st)
                    dos = qs + kQ
                    rows = qs + 2 * kQ

                    for r0 in range(0, kBrKV, kSub):  # #pragma unroll 1
                        sT = [[[0.0] * 4 for _ in range(32)] for _ in range(kSub // 8)]
                        dpT = [[[0.0] * 4 for _ in range(32)] for _ in range(kSub // 8)]
                        mma_abt(sm, sT, D, kSub // 8, lambda kt: a_frag(sm, ks, D, m0, kt, warp), qs, r0, warp)
                        mma_abt(sm, dpT, D, kSub // 8, lambda kt: a_frag(sm, vs, D, m0, kt, warp), dos, r0, warp)
                        for nt in range(kSub // 8):
                            for l in range(32):
                                for e in range(4):
                                    r = r0 + 8 * nt + 2 * (l & 3) + (e & 1)
                                    i, j = i0 + r, key[l][e >> 1]
                                    nl = read_f32(rows, r, l)
                                    p = 0.0 if i < min_query[l][e >> 1] else exp2(sT[nt][l][e] * sl2 + nl)
                                    z = P.z(h, i, j) if i < Sq and j < Sk else 1.0
                                    sT[nt][l][e] = p * z
                                    dpT[nt][l][e] = p * (z * dpT[nt][l][e] - read_f32(rows, kBrKV + r, l))
                        pz_a = c_to_a(sT, kSub // 16)
                        ds_a = c_to_a(dpT, kSub // 16)
                        mma_ab(sm, dv_acc, D, kSub // 16, D // 8, lambda kk: pz_a[kk], dos, r0, 0, warp)
                        mma_ab(sm, dk_acc, D, kSub // 16, D // 8, lambda kk: ds_a[kk], qs, r0, 0, warp)
                        if atomic_dq:
                            store_a_to_tile(sm, dss, kBrKV, ds_a, kSub // 16, m0, r0, warp)

                    if atomic_dq:
                        yield  # __syncthreads
                        qm0, d0 = 16 * (warp % 4), (warp // 4) * (D // 2)
                        dq = [[[0.0] * 4 for _ in range(32)] for _ in range(D // 16)]
                        mma_ab(sm, dq, D, kBcKV // 16, D // 16,
                               lambda kk: a_frag_trans(sm, dss, kBrKV, qm0, kk, warp), ks, 0, d0, warp)
                        for l in range(32):
                            for rr in range(2):
                                i = i0 + qm0 + (l >> 2) + 8 * rr
                                if i >= Sq:
                                    continue
                                for nd in range(D // 16):
                                    d = d0 + 2 * (l & 3) + 8 * nd
                                    dQacc[h][i][d] += P.scale * dq[nd][l][2 * rr]
                                    dQacc[h][i][d + 1] += P.scale * dq[nd][l][2 * rr + 1]

                cp_async_wait(sm, warp, 0)
                yield  # __syncthreads
                sc = [P.scale] * 32
                one = [1.0] * 32
                store_c_to_tile(sm, ks, D, dk_acc, D // 8, m0, sc, sc, warp)
                store_c_to_tile(sm, vs, D, dv_acc, D // 8, m0, one, one, warp)
                sm.syncwarp(warp)
                store_rows_from_tile(sm, ks, D, m0, lambda r: (dK[g][j0 + m0 + r], 0) if j0 + m0 + r < Sk else None,
                                     warp)
                store_rows_from_tile(sm, vs, D, m0, lambda r: (dV[g][j0 + m0 + r], 0) if j0 + m0 + r < Sk else None,
                                     warp)

            run_block(kWarps, sm, warp_fn)
            conflicts += sm.conflicts
    return dQacc, dK, dV, conflicts


def fast_dq(P, delta, neg_lse2, kStages=2):
    kWarps = 8
    kThreads, kBrQ, kBcQ = 32 * kWarps, 16 * kWarps, 64
    Sq, Sk, D = P.Sq, P.Sk, P.D
    kTile, kStage = kBcQ * D, 2 * kBcQ * D
    nbytes = (2 * kBrQ * D + kStages * 2 * kBcQ * D) * 2
    dQ = [[[None] * D for _ in range(Sq)] for _ in range(P.H)]
    nblocks = (Sq + kBrQ - 1) // kBrQ
    sl2 = P.scale * LOG2E
    conflicts = 0
    for h in range(P.H):
        for bx in range(nblocks):
            sm = Smem(nbytes, kWarps)

            def warp_fn(warp, h=h, bx=bx, sm=sm):
                g = h // P.G
                qs, dos, ring = 0, kBrQ * D, 2 * kBrQ * D
                q0 = (nblocks - 1 - bx if P.causal else bx) * kBrQ
                m0 = 16 * warp
                row = [[q0 + m0 + (l >> 2), q0 + m0 + (l >> 2) + 8] for l in range(32)]
                nl = [[neg_lse2[h][row[l][rr]] if row[l][rr] < Sq else NEG for rr in range(2)] for l in range(32)]
                dr = [[delta[h][row[l][rr]] if row[l][rr] < Sq else 0.0 for rr in range(2)] for l in range(32)]
                key_end = P.key_end(min(q0 + kBrQ, Sq) - 1)
                n_tiles = (key_end + kBcQ - 1) // kBcQ
                stage = lambda t: ring + (t % kStages) * kStage

                def load_kv(t):
                    load_kv_async(sm, stage(t), stage(t) + kTile, D, kBcQ, kThreads, P, g, t * kBcQ, warp)

                load_q_async(sm, qs, D, kBrQ, kThreads, P, h, q0, warp)
                load_rows_async(sm, dos, D, kBrQ, kThreads, P, P.dO, h, q0, warp)
                ring_start(sm, warp, kStages, n_tiles, load_kv)

                dq_acc = [[[0.0] * 4 for _ in range(32)] for _ in range(D // 8)]
                for t in range(n_tiles):
                    yield from ring_next(sm, warp, kStages, t, n_tiles, load_kv)
                    kt_s = stage(t)
                    vt_s = kt_s + kTile
                    k0 = t * kBcQ
                    s = [[[0.0] * 4 for _ in range(32)] for _ in range(kBcQ // 8)]
                    dp = [[[0.0] * 4 for _ in range(32)] for _ in range(kBcQ // 8)]
                    mma_abt(sm, s, D, kBcQ // 8, lambda kt: a_frag(sm, qs, D, m0, kt, warp), kt_s, 0, warp)
                    mma_abt(sm, dp, D, kBcQ // 8, lambda kt: a_frag(sm, dos, D, m0, kt, warp), vt_s, 0, warp)
                    edge = k0 + kBcQ > Sk or (P.causal and k0 + kBcQ - 1 > q0 + (Sk - Sq))
                    for nt in range(kBcQ // 8):
                        for l in range(32):
                            for e in range(4):
                                rr, j = e >> 1, k0 + 8 * nt + 2 * (l & 3) + (e & 1)
                                p = exp2(s[nt][l][e] * sl2 + nl[l][rr])
                                if edge and (j >= Sk or not P.visible(row[l][rr], j)):
                                    p = 0.0
                                z = P.z(h, row[l][rr], j) if row[l][rr] < Sq and j < Sk else 1.0
                                s[nt][l][e] = p * (z * dp[nt][l][e] - dr[l][rr])
                    da = c_to_a(s, kBcQ // 16)
                    mma_ab(sm, dq_acc, D, kBcQ // 16, D // 8, lambda kk: da[kk], kt_s, 0, 0, warp)

                sc = [P.scale] * 32
                cp_async_wait(sm, warp, 0)
                yield  # __syncthreads
                store_c_to_tile(sm, qs, D, dq_acc, D // 8, m0, sc, sc, warp)
                sm.syncwarp(warp)
                store_q_rows(sm, qs, D, m0, P, dQ, h, q0, warp)

            run_block(kWarps, sm, warp_fn)
            conflicts += sm.conflicts
    return dQ, conflicts


# ---- checks --------------------------------------------------------------------------------------
def max_err(A, B):
    worst = 0.0
    for x, y in zip(A, B):
        if isinstance(x, list):
            worst = max(worst, max_err(x, y))
        elif x is None:
            return math.inf  # never written
        elif y == NEG or x == NEG:
            if x != y:
                return math.inf
        else:
            worst = max(worst, abs(x - y))
    return worst


def check_forward(name, P, stages):
    O, LSE, conflicts = fast_forward(P, stages)
    Or, Lr, _, _, _ = direct(P)
    eo, el = max_err(O, Or), max_err(LSE, Lr)
    print(f"forward  {name}: |O err| {eo:.1e}  |LSE err| {el:.1e}  bank conflicts {conflicts}")
    return max(eo, el), conflicts


def check_backward(name, P, stages):
    Or, Lr, dQr, dKr, dVr = direct(P)
    delta, neg_lse2 = fast_row_stats(P, Or, Lr)
    dQa, dK, dV, c1 = fast_dkdv(P, delta, neg_lse2, True, stages)
    _, dK2, dV2, c2 = fast_dkdv(P, delta, neg_lse2, False, stages)
    dQd, c3 = fast_dq(P, delta, neg_lse2, stages)
    errs = [max_err(dQa, dQr), max_err(dQd, dQr), max_err(dK, dKr), max_err(dV, dVr), max_err(dK2, dKr),
            max_err(dV2, dVr)]
    print(f"backward {name}: |dQ err| atomic {errs[0]:.1e} deterministic {errs[1]:.1e}  |dK err| {errs[2]:.1e}  "
          f"|dV err| {errs[3]:.1e}  bank conflicts {c1 + c2 + c3}")
    return max(errs), c1 + c2 + c3


def main():
    quick = "--quick" in sys.argv
    fwd = [  # (Sq, Sk, D, H, Hkv, causal, dropout, stages)
        (150, 200, 64, 2, 1, True, True, 2),     # GQA, causal tiles, odd lengths, two query blocks
        (300, 60, 64, 1, 1, True, False, 3),     # Sq > Sk: blind rows, a whole blind block, 3 stages
        (70, 130, 128, 1, 1, False, False, 2),   # D = 128, partial key tile
    ]
    bwd = [
        (100, 150, 64, 2, 1, True, True, 2),     # GQA group summed in the block, dropout
        (300, 40, 64, 1, 1, True, False, 3),     # blind rows and a blind dQ block, 3 stages
        (64, 70, 128, 1, 1, False, False, 2),    # D = 128
    ]
    if quick:  # small, but still two query blocks / two KV blocks, a partial tile, GQA and dropout
        fwd = [(130, 140, 64, 2, 1, True, True, 2)]
        bwd = [(70, 130, 64, 2, 1, True, True, 2)]
    worst, conflicts = 0.0, 0
    for k, (Sq, Sk, D, H, Hkv, causal, dropout, stages) in enumerate(fwd):
        P = Problem(Sq, Sk, D, H, Hkv, causal, dropout, seed=10 + k)
        name = f"Sq={Sq} Sk={Sk} D={D} H={H} Hkv={Hkv} causal={causal} dropout={dropout} stages={stages}"
        e, c = check_forward(name, P, stages)
        worst, conflicts = max(worst, e), conflicts + c
    for k, (Sq, Sk, D, H, Hkv, causal, dropout, stages) in enumerate(bwd):
        P = Problem(Sq, Sk, D, H, Hkv, causal, dropout, seed=20 + k)
        name = f"Sq={Sq} Sk={Sk} D={D} H={H} Hkv={Hkv} causal={causal} dropout={dropout} stages={stages}"
        e, c = check_backward(name, P, stages)
        worst, conflicts = max(worst, e), conflicts + c
    print(f"worst error {worst:.1e}, bank conflicts {conflicts}")
    return 0 if worst < 1e-12 and conflicts == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SimError as e:
        print(f"FAILED: {e}")
        sys.exit(1)
