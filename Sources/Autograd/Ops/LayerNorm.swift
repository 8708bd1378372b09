// LayerNorm over the last dim: y = (x - mean) * rstd * gamma + beta. R rows, C channels.
// Rows are split across threads; gamma/beta gradients (column sums) are split by columns.

extension Tape {
    public func layerNorm(_ x: Tensor, _ gamma: Tensor, _ beta: Tensor, eps: Float) -> Tensor {
        let C = x.lastDim, R = x.rows
        precondition(gamma.shape == [C] && beta.shape == [C], "layerNorm \(x.shape) \(gamma.shape)")
        let out = Tensor(uninitialized: x.shape)
        let stats = Storage(count: 2 * R, zeroed: false)   // [R] mean, [R] rstd
        let mean = stats.pointer, rstd = stats.pointer + R
        Parallel.forEach(R, grain: 256) { rows in
            for r in rows {
                let xr = x.data + r * C, yr = out.data + r * C
                let m = vsum(xr, C) / Float(C)
                for c in 0..<C { yr[c] = xr[c] - m }                       // centred, then scaled in place
                let s = 1 / (vdot(yr, yr, C) / Float(C) + eps).squareRoot()
                mean[r] = m; rstd[r] = s
                for c in 0..<C { yr[c] = yr[c] * s * gamma.data[c] + beta.data[c] }
            }
        }
        if needsGrad(x, gamma, beta) {
            record(out) {
                let dy = out.grad
                _ = stats   // keep the saved statistics alive until backward
                if gamma.requiresGrad || beta.requiresGrad {
                    let dg = gamma.grad, db = beta.grad
                    Parallel.forEach(C, grain: 64) { cols in
                        for r in 0..<R {
                            let xr = x.data + r * C, dyr = dy + r * C, m = mean[r], s = rstd[r]
                            for c in cols { dg[c] += dyr[c] * (xr[c] - m) * s; db[c] += dyr[c] }
                        }
                    }
                }
                guard x.requiresGrad else { return }
                let (dx, fresh) = x.gradTarget()   // allocated here, before the threads write to it
                Parallel.forEach(R, grain: 256) { rows in
                    for r in rows {
                        // dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * gamma
                        let xr = x.data + r * C, dyr = dy + r * C, dxr = dx + r * C, m = mean[r], s = rstd[r]
                        let a = vdot(dyr, gamma.data, C) / Float(C)
                        var b: Float = 0
                        for c in 0..<C { b += dyr[c] * gamma.data[c] * (xr[c] - m) }
                        b *= s / Float(C)
                        store(dxr, fresh: fresh, 0..<C) { c in s * (dyr[c] * gamma.data[c] - a - (xr[c] - m) * s * b) }
                    }
                }
            }
        }
        return out
    }
}
