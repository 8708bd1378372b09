// Mean cross-entropy over rows whose target is not `ignoreIndex`.
// logits [N, V], targets [N] -> scalar. Backward: (softmax - onehot) / nValid.

import Foundation

extension Tape {
    public func crossEntropy(_ logits: Tensor, targets: [Int32], ignoreIndex: Int32 = -100) -> Tensor {
        let V = logits.lastDim, N = logits.rows
        precondition(targets.count == N, "crossEntropy targets \(targets.count) rows \(N)")
        let lse = Storage(count: N, zeroed: false)
        for t in targets where t != ignoreIndex {
            precondition(t >= 0 && Int(t) < V, "crossEntropy target \(t) out of range 0..<\(V)")
        }
        targets.withUnsafeBufferPointer { tg in
            Parallel.forEach(N, grain: 16) { rows in
                for n in rows where tg[n] != ignoreIndex {
                    let row = logits.data + n * V
                    let mx = vmax(row, V)
                    lse.pointer[n] = mx + log(vsum(V) { fastExp(row[$0] - mx) })
                }
            }
        }
        var total: Double = 0, valid = 0
        for n in 0..<N where targets[n] != ignoreIndex {
            total += Double(lse.pointer[n] - logits.data[n * V + Int(targets[n])])
            valid += 1
        }
        let out = Tensor(uninitialized: [])
        out.data[0] = valid > 0 ? Float(total / Double(valid)) : 0
        if needsGrad(logits) && valid > 0 {
            record(out) {
                let scale = out.grad[0] / Float(valid)
                let (g, fresh) = logits.gradTarget()
                targets.withUnsafeBufferPointer { tg in
                    Parallel.forEach(N, grain: 16) { rows in
                        for n in rows {
                            let row = logits.data + n * V, gr = g + n * V, l = lse.pointer[n]
                            guard tg[n] != ignoreIndex else {   // an ignored row adds nothing
                                if fresh { gr.update(repeating: 0, count: V) }
                                continue
                            }
                            store(gr, fresh: fresh, 0..<V) { v in scale * fastExp(row[v] - l) }
                            gr[Int(tg[n])] -= scale
                        }
                    }
                }
            }
        }
        return out
    }
}

extension Tape {
    /// Mean cross-entropy against target distributions: logits [N, V], q [N, V] -> scalar
    /// mean_n -sum_v q[n,v] log softmax(logits[n])_v. KL(q || softmax(logits)) is this minus
    /// the constant entropy of q. Backward: (sum(q[n]) softmax - q) / N.
    public func crossEntropy(_ logits: Tensor, distributions q: Tensor) -> Tensor {
        let V = logits.lastDim, N = logits.rows
        precondition(q.shape == logits.shape, "crossEntropy distributions \(q.shape) for logits \(logits.shape)")
        var lse = [Double](repeating: 0, count: N)
        var total = 0.0
        for n in 0..<N {
            let row = logits.data + n * V, qr = q.data + n * V
            lse[n] = logSumExp(row, V)
            for v in 0..<V where qr[v] != 0 { total += Double(qr[v]) * (lse[n] - Double(row[v])) }
        }
        let out = Tensor(uninitialized: [])
        out.data[0] = Float(total / Double(N))
        if needsGrad(logits) {
            record(out) {
                let scale = Double(out.grad[0]) / Double(N), g = logits.grad
                for n in 0..<N {
                    let row = logits.data + n * V, qr = q.data + n * V
                    var mass = 0.0
                    for v in 0..<V { mass += Double(qr[v]) }
                    for v in 0..<V { g[n * V + v] += Float(scale * (mass * exp(Double(row[v]) - lse[n]) - Double(qr[v]))) }
                }
            }
        }
        return out
    }
}

extension Tape {
    /// Mean over rows of KL(softmax(logits[n]) || p[n]) against constant reference
    /// log-probabilities logp [N, V]: sum_v q_v (log q_v - logp_v) with q = softmax(logits[n])
    /// (torch's kl_div(logp, log q, log_target=True, reduction="batchmean"), ROME's KL term).
    /// Backward: q_v (log q_v - logp_v - KL_n) / N.
    public func klDivergence(_ logits: Tensor, from logp: Tensor) -> Tensor {
        let V = logits.lastDim, N = logits.rows
        precondition(logp.shape == logits.shape, "klDivergence reference \(logp.shape) for logits \(logits.shape)")
        var lse = [Double](repeating: 0, count: N), kl = [Double](repeating: 0, count: N)
        for n in 0..<N {
            let row = logits.data + n * V, lp = logp.data + n * V
            lse[n] = logSumExp(row, V)
            for v in 0..<V {
                let lq = Double(row[v]) - lse[n]
                kl[n] += exp(lq) * (lq - Double(lp[v]))
            }
        }
        let out = Tensor(uninitialized: [])
        out.data[0] = Float(kl.reduce(0, +) / Double(N))
        if needsGrad(logits) {
            record(out) {
                let scale = Double(out.grad[0]) / Double(N), g = logits.grad
                for n in 0..<N {
                    let row = logits.data + n * V, lp = logp.data + n * V
                    for v in 0..<V {
                        let lq = Double(row[v]) - lse[n]
                        g[n * V + v] += Float(scale * exp(lq) * (lq - Double(lp[v]) - kl[n]))
                    }
                }
            }
        }
        return out
    }
}

/// log sum_v exp(row[v]) in Float64, shifted by the row's maximum.
private func logSumExp(_ row: UnsafeMutablePointer<Float>, _ V: Int) -> Double {
    let mx = vmax(row, V)
    var s = 0.0
    for v in 0..<V { s += exp(Double(row[v] - mx)) }
    return Double(mx) + log(s)
}
