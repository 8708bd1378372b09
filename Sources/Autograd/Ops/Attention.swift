// Fused multi-head self-attention core, reading heads in place (no permutes):
//   for each batch b and head h:  P = softmax(scale * Q_bh K_bh^T + mask_b)    [T, T]
//                                 P' = dropout(P)                               [T, T]
//                                 ctx_bh = P' V_bh                              [T, HS]
// q, k, v, ctx are [B*T, C] with head h in columns h*HS ..< (h+1)*HS. The (b, h) pairs are
// split across threads; each product is a single-threaded sgemm on strided views.
// Backward: dP' = dctx V^T, dV += P'^T dctx, dP = dP' * keep, dS = scale * P (dP - rowsum(dP P)),
// dQ += dS K, dK += dS^T Q.

import Dispatch

extension Tape {
    public func attention(q: Tensor, k: Tensor, v: Tensor, batch B: Int, heads NH: Int,
                          additiveMask mask: Tensor?, dropout p: Float = 0, rng: CounterRNG? = nil) -> Tensor {
        let C = q.lastDim, T = q.rows / B, HS = C / NH
        precondition(q.shape == k.shape && q.shape == v.shape && q.rows == B * T && C % NH == 0, "attention \(q.shape)")
        precondition(mask == nil || mask!.shape == [B, T], "attention mask \(mask?.shape ?? [])")
        precondition(p == 0 || rng != nil, "attention dropout needs an rng")
        let scale = 1 / Float(HS).squareRoot()
        let out = Tensor(uninitialized: q.shape)
        let probs = Storage(count: B * NH * T * T, zeroed: false)                  // P
        let dropped = p > 0 ? Storage(count: B * NH * T * T, zeroed: false) : probs // P'
        if p > 0 { dropoutMask(rng!, p: p, into: dropped.pointer, count: dropped.count) }
        let maskData = mask?.data
        forEachHead(B * NH) { _, bh in
            let b = bh / NH, h = bh % NH
            let P = probs.pointer + bh * T * T, Pd = dropped.pointer + bh * T * T
            let off = b * T * C + h * HS
            sgemm(false, true, T, T, HS, scale, q.data + off, k.data + off, 0, P, lda: C, ldb: C, ldc: T, parallel: false)
            for i in 0..<T { softmaxRow(P + i * T, T, mask: maskData.map { $0 + b * T }) }
            if p > 0 { for i in 0..<T * T { Pd[i] *= P[i] } }     // dropped holds the mask until here
            sgemm(false, false, T, HS, T, 1, Pd, v.data + off, 0, out.data + off, lda: T, ldb: C, ldc: C, parallel: false)
        }
        if needsGrad(q, k, v) {
            record(out) {
                let dctx = out.grad
                let dq = q.grad, dk = k.grad, dv = v.grad
                let keep = 1 / (1 - p)
                let scratch = Storage(count: Parallel.threads * T * T, zeroed: false)   // one dS [T, T] per thread
                forEachHead(B * NH) { t, bh in
                    let b = bh / NH, h = bh % NH, off = b * T * C + h * HS
                    let P = probs.pointer + bh * T * T, Pd = dropped.pointer + bh * T * T
                    let dS = scratch.pointer + t * T * T
                    sgemm(false, true, T, T, HS, 1, dctx + off, v.data + off, 0, dS, lda: C, ldb: C, ldc: T, parallel: false)
                    sgemm(true, false, T, HS, T, 1, Pd, dctx + off, 1, dv + off, lda: T, ldb: C, ldc: C, parallel: false)
                    for i in 0..<T {
                        let pr = P + i * T, pd = Pd + i * T, d = dS + i * T
                        if p > 0 { for j in 0..<T { d[j] = pd[j] != 0 ? d[j] * keep : 0 } }
                        let dot = vdot(d, pr, T)
                        for j in 0..<T { d[j] = scale * pr[j] * (d[j] - dot) }
                    }
                    sgemm(false, false, T, HS, T, 1, dS, k.data + off, 1, dq + off, lda: T, ldb: C, ldc: C, parallel: false)
                    sgemm(true, false, T, HS, T, 1, dS, q.data + off, 1, dk + off, lda: T, ldb: C, ldc: C, parallel: false)
                }
            }
        }
        return out
    }
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

/// In-place softmax of one row of length n, plus an optional additive mask row.
@inline(__always)
func softmaxRow(_ x: UnsafeMutablePointer<Float>, _ n: Int, mask: UnsafePointer<Float>?) {
    if let mask { for j in 0..<n { x[j] += mask[j] } }
    let mx = vmax(x, n)
    for j in 0..<n { x[j] = fastExp(x[j] - mx) }
    let inv = 1 / vsum(x, n)
    for j in 0..<n { x[j] *= inv }
}
