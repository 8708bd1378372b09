// GELU (erf form, as BERT) and tanh.

import Foundation

extension Tape {
    /// y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
    public func gelu(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        for i in 0..<x.count { let v = x.data[i]; out.data[i] = 0.5 * v * (1 + erf(v * Float(M_SQRT1_2))) }
        if needsGrad(x) {
            record(out) {
                let g = x.grad, dy = out.grad
                let k = Float(1 / (2 * Double.pi).squareRoot())
                for i in 0..<x.count {
                    let v = x.data[i]
                    let cdf = 0.5 * (1 + erf(v * Float(M_SQRT1_2)))
                    g[i] += dy[i] * (cdf + v * k * exp(-0.5 * v * v))
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
