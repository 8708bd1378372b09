// GELU (erf form, as BERT) and tanh.

import Foundation

extension Tape {
    /// y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
    public func gelu(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        let xs = x.data, ys = out.data
        Parallel.forEach(x.count) { r in for i in r { ys[i] = xs[i] * normalCdfPdf(xs[i]).cdf } }
        if needsGrad(x) {
            record(out) {
                let g = x.grad, dy = out.grad
                Parallel.forEach(x.count) { r in
                    for i in r { let (cdf, pdf) = normalCdfPdf(xs[i]); g[i] += dy[i] * (cdf + xs[i] * pdf) }
                }
            }
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
