// Mean cross-entropy over rows whose target is not `ignoreIndex`.
// logits [N, V], targets [N] -> scalar. Backward: (softmax - onehot) / nValid.

import Foundation

extension Tape {
    public func crossEntropy(_ logits: Tensor, targets: [Int32], ignoreIndex: Int32 = -100) -> Tensor {
        let V = logits.lastDim, N = logits.rows
        precondition(targets.count == N, "crossEntropy targets \(targets.count) rows \(N)")
        let lse = Storage(count: N, zeroed: false)
        var total: Double = 0, valid = 0
        for n in 0..<N {
            let t = targets[n]
            if t == ignoreIndex { continue }
            precondition(t >= 0 && Int(t) < V, "crossEntropy target \(t) out of range 0..<\(V)")
            let row = logits.data + n * V
            var mx = -Float.infinity
            for v in 0..<V { mx = max(mx, row[v]) }
            var s: Float = 0
            for v in 0..<V { s += exp(row[v] - mx) }
            let l = mx + log(s)
            lse.pointer[n] = l
            total += Double(l - row[Int(t)])
            valid += 1
        }
        let out = Tensor(uninitialized: [])
        out.data[0] = valid > 0 ? Float(total / Double(valid)) : 0
        if needsGrad(logits) && valid > 0 {
            record(out) {
                let scale = out.grad[0] / Float(valid)
                let g = logits.grad
                for n in 0..<N {
                    let t = targets[n]
                    if t == ignoreIndex { continue }
                    let row = logits.data + n * V, gr = g + n * V, l = lse.pointer[n]
                    for v in 0..<V { gr[v] += scale * exp(row[v] - l) }
                    gr[Int(t)] -= scale
                }
            }
        }
        return out
    }
}
