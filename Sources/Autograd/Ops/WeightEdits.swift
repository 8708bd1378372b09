// The ops that concept edits are made of (see Interventions/Edits.swift). Weight views are
// what `linear` sees in place of a weight W [O, I]; LoReFT acts on hidden states [N, C].
//   maskedWeight  W ⊙ M, M = 1[(logits + noise) / τ > 0] (hard Gumbel-sigmoid sample; noise =
//                 logistic samples, nil at evaluation), straight-through: backward treats M as
//                 s = σ((logits + noise) / τ), so dL/dlogits = dL/dy ⊙ W ⊙ s(1 - s) / τ, dL/dW = dL/dy ⊙ M
//   lowRankWeight W + (α/r)·B·A, B [O, r], A [r, I] (LoRA)
//   denseWeight   W + ΔW
//   loreft        h + Rᵀ(W·h + b − R·h), R, W [r, C], b [r] (Wu et al. 2024, LoReFT)

import Foundation

extension Tape {
    public func maskedWeight(_ w: Tensor, logits: Tensor, noise: Tensor?, temperature tau: Float = 1) -> Tensor {
        precondition(logits.shape == w.shape && (noise == nil || noise!.shape == w.shape),
                     "maskedWeight: logits \(logits.shape), noise \(noise?.shape ?? []) for weight \(w.shape)")
        let n = w.count, out = Tensor(uninitialized: w.shape)
        let l = logits.data, z = noise?.data, wd = w.data, o = out.data
        // z = (logits + noise) / τ; kept iff z > 0 (σ(z) > 1/2)
        @inline(__always) func arg(_ i: Int) -> Float { (l[i] + (z?[i] ?? 0)) / tau }
        Parallel.forEach(n) { r in for i in r { o[i] = arg(i) > 0 ? wd[i] : 0 } }
        if needsGrad(w, logits) {
            record(out) {
                let dy = out.grad
                if logits.requiresGrad {
                    let g = logits.grad
                    Parallel.forEach(n) { r in
                        for i in r {
                            let s = 1 / (1 + expf(-arg(i)))
                            g[i] += dy[i] * wd[i] * s * (1 - s) / tau
                        }
                    }
                }
                if w.requiresGrad {
                    let g = w.grad
                    Parallel.forEach(n) { r in for i in r where arg(i) > 0 { g[i] += dy[i] } }
                }
            }
        }
        return out
    }

    /// W + (α/r)·B·A with W [O, I], B [O, r], A [r, I].
    public func lowRankWeight(_ w: Tensor, a: Tensor, b: Tensor, alpha: Float) -> Tensor {
        let r = a.shape[0]
        precondition(a.shape.count == 2 && b.shape == [w.shape[0], r] && a.shape[1] == w.shape[1],
                     "lowRankWeight: W \(w.shape), A \(a.shape), B \(b.shape)")
        return add(w, scale(matmul(b, a), alpha / Float(r)))
    }

    /// W + ΔW.
    public func denseWeight(_ w: Tensor, delta: Tensor) -> Tensor { add(w, delta) }

    /// LoReFT on rows h [N, C]: h + Rᵀ(W·h + b − R·h), R and W [r, C], b [r].
    public func loreft(_ h: Tensor, r: Tensor, w: Tensor, b: Tensor) -> Tensor {
        precondition(r.shape.count == 2 && r.shape[1] == h.lastDim && w.shape == r.shape && b.shape == [r.shape[0]],
                     "loreft: h \(h.shape), R \(r.shape), W \(w.shape), b \(b.shape)")
        let diff = add(linear(h, w, b), scale(linear(h, r, nil), -1))   // [N, r]
        return add(h, matmul(diff, r))                                    // [N, C]
    }
}
