#!/usr/bin/env python3
"""Lane-by-lane emulation of the tensor-core attention kernels' fragment bookkeeping, runnable without a GPU.

flash_mma_forward_kernel (kernels/cuda/flash_attention_mma.cu) and flash_mma_dkdv_kernel
(kernels/cuda/flash_attention_mma_bwd.cu) are transcribed here loop for loop, with every register
fragment built by the same index formulas, and mma.m16n8k16 executed by its definition in the PTX ISA
("Matrix Fragments for mma.m16n8k16 with floating point type": A, B and C element <-> lane/register
maps; each A and B element must be set exactly once). O, LSE, dQ, dK and dV are compared with the
direct formulas in double precision (no rounding to 16 bits: this checks indexing, masking, the online
softmax and the register reuse, not precision). Small head dims keep it fast (pure Python, ~20 s).

    python3 tests/kernels/cuda/mma_kernels_sim.py

Keep it in step with the kernels when their indexing changes. It does not replace the GPU tests.
"""
import math, random
random.seed(3)
NEG = -math.inf

def mma(c, a, b0, b1):
    # c: [32][4] floats, a: [32][4] pairs, b0/b1: [32] pairs. Returns new c.
    A = [[None]*16 for _ in range(16)]; B = [[None]*8 for _ in range(16)]
    for lane in range(32):
        gr, tg = lane >> 2, lane & 3
        for i in range(8):
            v = a[lane][i // 2][i % 2]
            row = gr if (i < 2 or 4 <= i < 6) else gr + 8
            col = tg * 2 + (i & 1) + (8 if i >= 4 else 0)
            assert A[row][col] is None; A[row][col] = v
        for i in range(4):
            v = (b0 if i < 2 else b1)[lane][i % 2]
            row = tg * 2 + (i & 1) + (8 if i >= 2 else 0)
            col = gr
            assert B[row][col] is None; B[row][col] = v
    out = [list(x) for x in c]
    for lane in range(32):
        gr, tg = lane >> 2, lane & 3
        for i in range(4):
            row = gr + (8 if i >= 2 else 0); col = tg * 2 + (i & 1)
            out[lane][i] += sum(A[row][k] * B[k][col] for k in range(16))
    return out

def forward_kernel(Q, K, V, Sq, Sk, D, causal, scale):
    kBr = kBc = 64
    O = [[None]*D for _ in range(Sq)]; LSE = [None]*Sq
    nblocks = (Sq + kBr - 1) // kBr
    def key_end(i_last):
        return max(0, min(Sk, i_last + (Sk - Sq) + 1)) if causal else Sk
    def visible(i, j): return (not causal) or j <= i + (Sk - Sq)
    for bx in range(nblocks):
        q0 = (nblocks - 1 - bx if causal else bx) * kBr
        kend = key_end(min(q0 + kBr, Sq) - 1)
        for warp in range(4):
            rows = [[q0 + warp*16 + (l >> 2), q0 + warp*16 + (l >> 2) + 8] for l in range(32)]
            def qpair(lane, r, c):
                i = rows[lane][r]
                return (Q[i][c], Q[i][c+1]) if i < Sq else (0.0, 0.0)
            qa = [[[qpair(l, 0, 16*kt + 2*(l&3)), qpair(l, 1, 16*kt + 2*(l&3)),
                    qpair(l, 0, 16*kt + 2*(l&3) + 8), qpair(l, 1, 16*kt + 2*(l&3) + 8)] for l in range(32)]
                  for kt in range(D // 16)]
            oacc = [[[0.0]*4 for _ in range(32)] for nd in range(D // 8)]
            m = [[NEG, NEG] for _ in range(32)]; lsum = [[0.0, 0.0] for _ in range(32)]
            for k0 in range(0, kend, kBc):
                Ks = [K[k0 + c] if k0 + c < Sk else [0.0]*D for c in range(kBc)]
                Vs = [V[k0 + c] if k0 + c < Sk else [0.0]*D for c in range(kBc)]
                s = []
                for nt in range(kBc // 8):
                    acc = [[0.0]*4 for _ in range(32)]
                    for kt in range(D // 16):
                        b0 = [(Ks[8*nt + (l>>2)][16*kt + 2*(l&3)], Ks[8*nt + (l>>2)][16*kt + 2*(l&3) + 1]) for l in range(32)]
                        b1 = [(Ks[8*nt + (l>>2)][16*kt + 2*(l&3) + 8], Ks[8*nt + (l>>2)][16*kt + 2*(l&3) + 9]) for l in range(32)]
                        acc = mma(acc, qa[kt], b0, b1)
                    s.append(acc)
                sl2 = scale * 1.4426950408889634
                edge = k0 + kBc > Sk or (causal and k0 + kBc - 1 > q0 + (Sk - Sq))
                for nt in range(kBc // 8):
                    for l in range(32):
                        for e in range(4):
                            x = s[nt][l][e] * sl2
                            if edge:
                                j = k0 + 8*nt + 2*(l&3) + (e&1); i = rows[l][e >> 1]
                                if j >= Sk or not visible(i, j): x = NEG
                            s[nt][l][e] = x
                for rr in range(2):
                    # quad max
                    mxl = [max(max(s[nt][l][2*rr], s[nt][l][2*rr+1]) for nt in range(kBc//8)) for l in range(32)]
                    mxq = [max(mxl[(l & ~3) + t] for t in range(4)) for l in range(32)]
                    for l in range(32):
                        m_new = max(m[l][rr], mxq[l]); m_use = 0.0 if m_new == NEG else m_new
                        alpha = 2 ** (m[l][rr] - m_use) if m[l][rr] != NEG else 0.0
                        m[l][rr] = m_new; lsum[l][rr] *= alpha
                        for nd in range(D // 8):
                            oacc[nd][l][2*rr] *= alpha; oacc[nd][l][2*rr+1] *= alpha
                        for nt in range(kBc // 8):
                            p0 = 2 ** (s[nt][l][2*rr] - m_use) if s[nt][l][2*rr] != NEG else 0.0
                            p1 = 2 ** (s[nt][l][2*rr+1] - m_use) if s[nt][l][2*rr+1] != NEG else 0.0
                            s[nt][l][2*rr] = p0; s[nt][l][2*rr+1] = p1; lsum[l][rr] += p0 + p1
                for kk in range(kBc // 16):
                    pa = [[(s[2*kk][l][0], s[2*kk][l][1]), (s[2*kk][l][2], s[2*kk][l][3]),
                           (s[2*kk+1][l][0], s[2*kk+1][l][1]), (s[2*kk+1][l][2], s[2*kk+1][l][3])] for l in range(32)]
                    for nd in range(D // 8):
                        def vv(l, dr):
                            r = 16*kk + 2*(l&3) + dr; c = 8*nd + (l>>2)
                            return Vs[r][c]
                        b0 = [(vv(l, 0), vv(l, 1)) for l in range(32)]
                        b1 = [(vv(l, 8), vv(l, 9)) for l in range(32)]
                        oacc[nd] = mma(oacc[nd], pa, b0, b1)
            for rr in range(2):
                lq = [sum(lsum[(l & ~3) + t][rr] for t in range(4)) for l in range(32)]
                for l in range(32):
                    i = rows[l][rr]
                    if i >= Sq: continue
                    inv = 1.0 / lq[l] if lq[l] > 0 else 0.0
                    for nd in range(D // 8):
                        for e in range(2):
                            d = 8*nd + 2*(l&3) + e
                            assert O[i][d] is None or O[i][d] == oacc[nd][l][2*rr+e]*inv
                            O[i][d] = oacc[nd][l][2*rr+e] * inv
                    if (l & 3) == 0:
                        LSE[i] = (m[l][rr] + math.log2(lq[l])) * math.log(2) if lq[l] > 0 else NEG
    return O, LSE

def direct_forward(Q, K, V, Sq, Sk, D, causal, scale):
    O = []; LSE = []
    for i in range(Sq):
        sc = [scale * sum(Q[i][d]*K[j][d] for d in range(D)) if (not causal or j <= i + Sk - Sq) else NEG for j in range(Sk)]
        mx = max(sc)
        if mx == NEG:
            O.append([0.0]*D); LSE.append(NEG); continue
        e = [math.exp(x - mx) if x != NEG else 0.0 for x in sc]; ssum = sum(e)
        O.append([sum(e[j]*V[j][d] for j in range(Sk)) / ssum for d in range(D)]); LSE.append(mx + math.log(ssum))
    return O, LSE


def backward_kernel(Qh, K, V, dOh, LSEh, Dh, Sq, Sk, D, G, causal, scale):
    kBc, kBr = 64, 32
    dK = [[0.0]*D for _ in range(Sk)]; dV = [[0.0]*D for _ in range(Sk)]
    dQ = [[[0.0]*D for _ in range(Sq)] for _ in range(G)]
    log2e = 1.4426950408889634
    def visible(i, j): return (not causal) or j <= i + (Sk - Sq)
    def first_query(j): return max(0, j - (Sk - Sq)) if causal else 0
    for bx in range((Sk + kBc - 1) // kBc):
        j0 = bx * kBc
        Ks = [K[j0 + c] if j0 + c < Sk else [0.0]*D for c in range(kBc)]
        Vs = [V[j0 + c] if j0 + c < Sk else [0.0]*D for c in range(kBc)]
        i_start = (first_query(j0) // kBr) * kBr
        dk_acc = [[[[0.0]*4 for _ in range(32)] for nd in range(D // 8)] for w in range(4)]
        dv_acc = [[[[0.0]*4 for _ in range(32)] for nd in range(D // 8)] for w in range(4)]
        for h in range(G):
            for i0 in range(i_start, Sq, kBr):
                Qs = [Qh[h][i0 + r] if i0 + r < Sq else [0.0]*D for r in range(kBr)]
                dOs = [dOh[h][i0 + r] if i0 + r < Sq else [0.0]*D for r in range(kBr)]
                lse_s = [LSEh[h][i0 + r] * log2e if i0 + r < Sq else NEG for r in range(kBr)]
                delta_s = [Dh[h][i0 + r] if i0 + r < Sq else 0.0 for r in range(kBr)]
                dSs = [[None]*kBc for _ in range(kBr)]
                for w in range(4):
                    key = [[j0 + 16*w + (l>>2), j0 + 16*w + (l>>2) + 8] for l in range(32)]
                    st, dpt = [], []
                    for nt in range(kBr // 8):
                        s_acc = [[0.0]*4 for _ in range(32)]; d_acc = [[0.0]*4 for _ in range(32)]
                        for kt in range(D // 16):
                            def afr(T):
                                return [[
                                    (T[16*w + (l>>2)][16*kt + 2*(l&3)], T[16*w + (l>>2)][16*kt + 2*(l&3) + 1]),
                                    (T[16*w + (l>>2) + 8][16*kt + 2*(l&3)], T[16*w + (l>>2) + 8][16*kt + 2*(l&3) + 1]),
                                    (T[16*w + (l>>2)][16*kt + 2*(l&3) + 8], T[16*w + (l>>2)][16*kt + 2*(l&3) + 9]),
                                    (T[16*w + (l>>2) + 8][16*kt + 2*(l&3) + 8], T[16*w + (l>>2) + 8][16*kt + 2*(l&3) + 9])]
                                    for l in range(32)]
                            def bfr(T, off):
                                return [(T[8*nt + (l>>2)][16*kt + 2*(l&3) + off], T[8*nt + (l>>2)][16*kt + 2*(l&3) + off + 1]) for l in range(32)]
                            s_acc = mma(s_acc, afr(Ks), bfr(Qs, 0), bfr(Qs, 8))
                            d_acc = mma(d_acc, afr(Vs), bfr(dOs, 0), bfr(dOs, 8))
                        st.append(s_acc); dpt.append(d_acc)
                    for nt in range(kBr // 8):
                        for l in range(32):
                            for e in range(4):
                                r = 8*nt + 2*(l&3) + (e&1); i = i0 + r; j = key[l][e >> 1]
                                p = 0.0
                                if i < Sq and j < Sk and visible(i, j) and lse_s[r] != NEG:
                                    p = 2 ** (st[nt][l][e] * scale * log2e - lse_s[r])
                                st[nt][l][e] = p
                                dpt[nt][l][e] = p * (dpt[nt][l][e] - delta_s[r])
                    for kk in range(kBr // 16):
                        def afrom(X):
                            return [[(X[2*kk][l][0], X[2*kk][l][1]), (X[2*kk][l][2], X[2*kk][l][3]),
                                     (X[2*kk+1][l][0], X[2*kk+1][l][1]), (X[2*kk+1][l][2], X[2*kk+1][l][3])] for l in range(32)]
                        pa, sa = afrom(st), afrom(dpt)
                        for nd in range(D // 8):
                            def col(T, dr):
                                return [(T[16*kk + 2*(l&3) + dr][8*nd + (l>>2)], T[16*kk + 2*(l&3) + dr + 1][8*nd + (l>>2)]) for l in range(32)]
                            dv_acc[w][nd] = mma(dv_acc[w][nd], pa, col(dOs, 0), col(dOs, 8))
                            dk_acc[w][nd] = mma(dk_acc[w][nd], sa, col(Qs, 0), col(Qs, 8))
                    for nt in range(kBr // 8):
                        for l in range(32):
                            for e in range(4):
                                q = 8*nt + 2*(l&3) + (e&1); kidx = 16*w + (l>>2) + 8*(e>>1)
                                assert dSs[q][kidx] is None
                                dSs[q][kidx] = dpt[nt][l][e]
                # after __syncthreads: dQ
                for w in range(4):
                    qr0, d0 = 16*(w & 1), (w >> 1) * (D // 2)
                    dq = [[[0.0]*4 for _ in range(32)] for nd in range(D // 16)]
                    for kk in range(kBc // 16):
                        da = [[(dSs[qr0 + (l>>2)][16*kk + 2*(l&3)], dSs[qr0 + (l>>2)][16*kk + 2*(l&3) + 1]),
                               (dSs[qr0 + (l>>2) + 8][16*kk + 2*(l&3)], dSs[qr0 + (l>>2) + 8][16*kk + 2*(l&3) + 1]),
                               (dSs[qr0 + (l>>2)][16*kk + 2*(l&3) + 8], dSs[qr0 + (l>>2)][16*kk + 2*(l&3) + 9]),
                               (dSs[qr0 + (l>>2) + 8][16*kk + 2*(l&3) + 8], dSs[qr0 + (l>>2) + 8][16*kk + 2*(l&3) + 9])] for l in range(32)]
                        for nd in range(D // 16):
                            def kc(dr):
                                return [(Ks[16*kk + 2*(l&3) + dr][d0 + 8*nd + (l>>2)], Ks[16*kk + 2*(l&3) + dr + 1][d0 + 8*nd + (l>>2)]) for l in range(32)]
                            dq[nd] = mma(dq[nd], da, kc(0), kc(8))
                    for nd in range(D // 16):
                        for l in range(32):
                            for e in range(4):
                                i = i0 + qr0 + (l>>2) + 8*(e>>1); d = d0 + 8*nd + 2*(l&3) + (e&1)
                                if i < Sq: dQ[h][i][d] += scale * dq[nd][l][e]
        for w in range(4):
            for l in range(32):
                for rr in range(2):
                    j = j0 + 16*w + (l>>2) + 8*rr
                    if j >= Sk: continue
                    for nd in range(D // 8):
                        for e in range(2):
                            d = 8*nd + 2*(l&3) + e
                            dK[j][d] = scale * dk_acc[w][nd][l][2*rr + e]
                            dV[j][d] = dv_acc[w][nd][l][2*rr + e]
    return dQ, dK, dV

def direct_backward(Qh, K, V, dOh, Sq, Sk, D, G, causal, scale):
    dQ = [[[0.0]*D for _ in range(Sq)] for _ in range(G)]; dK = [[0.0]*D for _ in range(Sk)]; dV = [[0.0]*D for _ in range(Sk)]
    LSEh, Dh = [], []
    for h in range(G):
        L, De = [], []
        for i in range(Sq):
            sc = [scale*sum(Qh[h][i][d]*K[j][d] for d in range(D)) if (not causal or j <= i + Sk - Sq) else NEG for j in range(Sk)]
            mx = max(sc)
            if mx == NEG:
                L.append(NEG); De.append(0.0); continue
            ex = [math.exp(x - mx) if x != NEG else 0.0 for x in sc]; ssum = sum(ex); P = [x/ssum for x in ex]
            L.append(mx + math.log(ssum))
            o = [sum(P[j]*V[j][d] for j in range(Sk)) for d in range(D)]
            delta = sum(dOh[h][i][d]*o[d] for d in range(D)); De.append(delta)
            for j in range(Sk):
                if P[j] == 0: continue
                dp = sum(dOh[h][i][d]*V[j][d] for d in range(D)); ds = P[j]*(dp - delta)
                for d in range(D):
                    dQ[h][i][d] += scale*ds*K[j][d]; dK[j][d] += scale*ds*Qh[h][i][d]; dV[j][d] += P[j]*dOh[h][i][d]
        LSEh.append(L); Dh.append(De)
    return dQ, dK, dV, LSEh, Dh



def main():
    worst = 0.0
    for (Sq, Sk, D, causal) in [(70, 100, 16, True), (130, 45, 32, True), (33, 150, 16, False)]:
        Q = [[random.uniform(-1, 1) for _ in range(D)] for _ in range(Sq)]
        K = [[random.uniform(-1, 1) for _ in range(D)] for _ in range(Sk)]
        V = [[random.uniform(-1, 1) for _ in range(D)] for _ in range(Sk)]
        scale = 2 / math.sqrt(D)
        O, L = forward_kernel(Q, K, V, Sq, Sk, D, causal, scale)
        Or, Lr = direct_forward(Q, K, V, Sq, Sk, D, causal, scale)
        eo = max(abs(O[i][d] - Or[i][d]) for i in range(Sq) for d in range(D))
        el = max((abs(L[i] - Lr[i]) if Lr[i] != NEG else (0 if L[i] == NEG else 1e9)) for i in range(Sq))
        print(f"Sq={Sq} Sk={Sk} D={D} causal={causal}: max |O err| {eo:.2e}, max |LSE err| {el:.2e}")
        worst = max(worst, eo, el)
    for (Sq, Sk, D, G, causal) in [(40, 70, 16, 2, True), (70, 30, 32, 1, True), (33, 65, 16, 1, False)]:
        R = lambda n: [[random.uniform(-1, 1) for _ in range(D)] for _ in range(n)]
        Qh = [R(Sq) for _ in range(G)]; dOh = [R(Sq) for _ in range(G)]; K = R(Sk); V = R(Sk)
        scale = 2 / math.sqrt(D)
        dQr, dKr, dVr, LSEh, Dh = direct_backward(Qh, K, V, dOh, Sq, Sk, D, G, causal, scale)
        dQ, dK, dV = backward_kernel(Qh, K, V, dOh, LSEh, Dh, Sq, Sk, D, G, causal, scale)
        e = lambda A, B: max(abs(a - b) for ra, rb in zip(A, B) for a, b in zip(ra, rb))
        print(f"Sq={Sq} Sk={Sk} D={D} G={G} causal={causal}: dQ {max(e(dQ[h], dQr[h]) for h in range(G)):.2e} "
              f"dK {e(dK, dKr):.2e} dV {e(dV, dVr):.2e}")
        worst = max(worst, max(e(dQ[h], dQr[h]) for h in range(G)), e(dK, dKr), e(dV, dVr))
    print('worst error', worst)
    return 0 if worst < 1e-12 else 1


if __name__ == '__main__':
    raise SystemExit(main())
