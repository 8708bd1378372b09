// GELU (erf form, as BERT) and tanh.

import Foundation

extension Tape {
    /// y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)). When recording, the forward pass also keeps
    /// y' = Phi(x) + x phi(x), which it has at hand, for backward (cheaper to read than to recompute).
    public func gelu(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        let xs = x.data, ys = out.data
        guard needsGrad(x) else {
            Parallel.forEach(x.count) { r in for i in r { ys[i] = xs[i] * normalCdfPdf(xs[i]).cdf } }
            return out
        }
        let slope = Storage(count: x.count, zeroed: false), d = slope.pointer
        Parallel.forEach(x.count) { r in
            for i in r { let (cdf, pdf) = normalCdfPdf(xs[i]); ys[i] = xs[i] * cdf; d[i] = cdf + xs[i] * pdf }
        }
        record(out) {
            let (g, fresh) = x.gradTarget(), dy = out.grad, d = slope.pointer   // the closure keeps `slope` alive
            Parallel.forEach(x.count) { r in store(g, fresh: fresh, r) { dy[$0] * d[$0] } }
        }
        return out
    }

    public func tanh(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        for i in 0..<x.count { out.data[i] = Foundation.tanh(x.data[i]) }
        if needsGrad(x) {
            record(out) {
                let g = x.grad, dy = out.grad
                for i in 0..<x.count { let y = out.data[i]; g[i] += dy[i] * (1 - y * y) }
            }
        }
        return out
    }
}
