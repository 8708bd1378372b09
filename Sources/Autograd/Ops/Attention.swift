// Multi-head self-attention core as two ops, reading heads in place (no permutes), with the
// attention probabilities between them (the model's `attn.probs` site):
//   attentionProbs    for each batch b and head h:  P = softmax(scale * Q_bh K_bh^T + mask_b)   [T, T]
//                                                   P' = dropout(P)
//   attentionContext  ctx_bh = P'_bh V_bh                                                        [T, HS]
// q, k, v, ctx are [B*T, C] with head h in columns h*HS ..< (h+1)*HS. P' is [B*T, NH*T]: row
// b*T + i is query position i of example b (the row of every site), columns h*T ..< (h+1)*T its
// weights over the keys in head h. The dropout mask is drawn in [B, NH, T, T] order (the order
// of the dropout reference fixture). The (b, h) pairs are split across threads; each product
// is a single-threaded sgemm on strided views, or on a bf16 tape a oneDNN bf16 product of
// bf16 copies of its operands (as torch.autocast's bf16 batched products); softmax, dropout
// and dS stay fp32.
// Backward: context: dP' += dctx V^T, dV += P'^T dctx; probs: dP = dP' * keep where kept,
// dS = scale * P (dP - rowsum(dP P)), dQ += dS K, dK += dS^T Q.

import Dispatch

extension Tape {
    /// P' [B*T, NH*T]: each head's softmax attention weights (after dropout) of every query row.
    public func attentionProbs(q: Tensor, k: Tensor, batch B: Int, heads NH: Int,
                               additiveMask mask: Tensor?, dropout p: Float = 0, rng: CounterRNG? = nil) -> Tensor {
        let C = q.lastDim, T = q.rows / B, HS = C / NH, W = NH * T
        precondition(q.shape == k.shape && q.rows == B * T && C % NH == 0, "attention \(q.shape)")
        precondition(mask == nil || mask!.shape == [B, T], "attention mask \(mask?.shape ?? [])")
        precondition(p == 0 || rng != nil, "attention dropout needs an rng")
        let scale = 1 / Float(HS).squareRoot()
        let out = Tensor(uninitialized: [B * T, W])
        // with dropout, P (kept for backward) and P' (out) are separate; the mask is drawn a row
        // at a time where it is applied (backward finds the dropped weights as P' = 0)
        let probs = p > 0 ? Storage(count: B * T * W, zeroed: false) : nil
        let rowMask = p > 0 ? Storage(count: Parallel.threads * T, zeroed: false) : nil   // one mask row per thread
        let P0 = probs?.pointer ?? out.data, maskData = mask?.data
        let qh = bf16Copy(q), kh = bf16Copy(k)
        forEachHead(B * NH) { t, bh in
            let b = bh / NH, h = bh % NH
            let P = P0 + b * T * W + h * T, off = b * T * C + h * HS
            product(false, true, T, T, HS, q.data + off, bf16At(qh, off), k.data + off, bf16At(kh, off), 0, P, lda: C, ldb: C, ldc: W, thread: t)
            for i in 0..<T { softmaxRow(P + i * W, T, scale: scale, mask: maskData.map { $0 + b * T }) }
            if let rowMask {
                let Pd = out.data + b * T * W + h * T, M = rowMask.pointer + t * T
                for i in 0..<T {
                    dropoutMask(rng!, p: p, into: M, counters: (bh * T + i) * T ..< (bh * T + i + 1) * T)
                    for j in 0..<T { Pd[i * W + j] = P[i * W + j] * M[j] }
                }
            }
        }
        if needsGrad(q, k) {
            record(out) {
                let dPd = out.grad
                let (dq, dqFresh) = q.gradTarget(), (dk, dkFresh) = k.gradTarget()
                let keep = 1 / (1 - p)
                let scratch = Storage(count: Parallel.threads * T * T, zeroed: false)   // one dS [T, T] per thread
                let scratchh = qh.map { _ in Storage(count: (Parallel.threads * T * T + 1) / 2, zeroed: false) }   // and its bf16 copy
                forEachHead(B * NH) { t, bh in
                    let b = bh / NH, h = bh % NH, off = b * T * C + h * HS, poff = b * T * W + h * T
                    let dS = scratch.pointer + t * T * T
                    for i in 0..<T {
                        let pr = P0 + poff + i * W, pd = out.data + poff + i * W, g = dPd + poff + i * W, d = dS + i * T
                        if p > 0 { for j in 0..<T { d[j] = pd[j] != 0 ? g[j] * keep : 0 } } else { for j in 0..<T { d[j] = g[j] } }
                        let dot = vdot(d, pr, T)
                        for j in 0..<T { d[j] = scale * pr[j] * (d[j] - dot) }
                    }
                    let dSh = scratchh.map { s in
                        let h16 = UnsafeMutableRawPointer(s.pointer).assumingMemoryBound(to: UInt16.self) + t * T * T
                        BF16.round(dS, count: T * T, into: h16)
                        return UnsafeRawPointer(h16)
                    }
                    product(false, false, T, HS, T, dS, dSh, k.data + off, bf16At(kh, off), dqFresh ? 0 : 1, dq + off, lda: T, ldb: C, ldc: C, thread: t)
                    product(true, false, T, HS, T, dS, dSh, q.data + off, bf16At(qh, off), dkFresh ? 0 : 1, dk + off, lda: T, ldb: C, ldc: C, thread: t)
                }
                _ = probs   // P lives as long as this step
            }
        }
        return out
    }

    /// ctx [B*T, C]: each head's weighted sum of the values, P'_bh V_bh (P' from `attentionProbs`).
    public func attentionContext(_ probs: Tensor, v: Tensor, batch B: Int, heads NH: Int) -> Tensor {
        let C = v.lastDim, T = v.rows / B, HS = C / NH, W = NH * T
        precondition(v.rows == B * T && C % NH == 0 && probs.shape == [B * T, W], "attention context \(probs.shape) x \(v.shape)")
        let out = Tensor(uninitialized: v.shape)
        let ph = bf16Copy(probs), vh = bf16Copy(v)
        forEachHead(B * NH) { t, bh in
            let b = bh / NH, h = bh % NH, off = b * T * C + h * HS, poff = b * T * W + h * T
            product(false, false, T, HS, T, probs.data + poff, bf16At(ph, poff), v.data + off, bf16At(vh, off), 0, out.data + off,
                        lda: W, ldb: C, ldc: C, thread: t)
        }
        if needsGrad(probs, v) {
            record(out) {
                let dctx = out.grad, dctxh = ph.map { _ in BF16.copy(dctx, count: B * T * C) }
                let dP = probs.requiresGrad ? probs.gradTarget() : nil, dv = v.requiresGrad ? v.gradTarget() : nil
                forEachHead(B * NH) { t, bh in
                    let b = bh / NH, h = bh % NH, off = b * T * C + h * HS, poff = b * T * W + h * T
                    if let dP { product(false, true, T, T, HS, dctx + off, bf16At(dctxh, off), v.data + off, bf16At(vh, off), dP.fresh ? 0 : 1, dP.pointer + poff, lda: C, ldb: C, ldc: W, thread: t) }
                    if let dv { product(true, false, T, HS, T, probs.data + poff, bf16At(ph, poff), dctx + off, bf16At(dctxh, off), dv.fresh ? 0 : 1, dv.pointer + off, lda: W, ldb: C, ldc: C, thread: t) }
                }
            }
        }
        return out
    }

    /// The bf16 copy of an attention operand on a bf16 tape (nil: fp32).
    func bf16Copy(_ t: Tensor) -> Storage? { precision == .bf16 ? BF16.copy(t.data, count: t.count) : nil }
}

/// Run `body(thread, i)` for i in 0..<n, split into contiguous ranges over the kernel threads.
@inline(__always)
func forEachHead(_ n: Int, _ body: (Int, Int) -> Void) {
    let parts = min(Parallel.threads, n)
    if parts <= 1 { for i in 0..<n { body(0, i) }; return }
    DispatchQueue.concurrentPerform(iterations: parts) { t in
        for i in (n * t / parts)..<(n * (t + 1) / parts) { body(t, i) }
    }
}

/// In-place softmax of one row of length n, scaled, plus an optional additive mask row.
@inline(__always)
func softmaxRow(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float, mask: UnsafePointer<Float>?) {
    if let mask { for j in 0..<n { x[j] = x[j] * scale + mask[j] } } else { for j in 0..<n { x[j] *= scale } }
    let mx = vmax(x, n)
    for j in 0..<n { x[j] = fastExp(x[j] - mx) }
    let inv = 1 / vsum(x, n)
    for j in 0..<n { x[j] *= inv }
}
