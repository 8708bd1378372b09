// AdamW with decoupled weight decay (the torch.optim.AdamW update, step for step), global
// gradient-norm clipping, and no decay on biases and LayerNorm weights. It optimises a
// `ParameterGroup`: the model's trainable subset plus any edit's own tensors; frozen tensors
// are never written (no step, no decay).

import Autograd

public struct AdamWConfig: Codable, Equatable, Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-6
    public var weightDecay: Float = 0.01
    public var maxGradNorm: Float = 1.0   // 0 disables clipping
    public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-6, weightDecay: Float = 0.01,
                maxGradNorm: Float = 1.0) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        self.maxGradNorm = maxGradNorm
    }
}

public final class AdamW {
    public let config: AdamWConfig
    public let group: ParameterGroup
    /// The first member's store (the model's, for checkpoints) and its moments.
    public var params: Parameters { group.members[0].params }
    public var m: Storage { moments[0].m }
    public var v: Storage { moments[0].v }
    public private(set) var step = 0
    private let moments: [(m: Storage, v: Storage)]   // per member, in its parameter layout
    private let decay: [Storage]                       // per member and element: 1 where weight decay applies
    private let ranges: [[Range<Int>]]                 // per member: the trainable elements (adjacent tensors merged)

    /// Every tensor of `params` trains; biases and LayerNorm weights are not decayed.
    public convenience init(_ params: Parameters, config: AdamWConfig) {
        self.init(ParameterGroup().adding(params, decays: AdamW.decays), config: config)
    }

    /// Optimise a parameter group: only its trainable tensors are ever written.
    public init(_ group: ParameterGroup, config: AdamWConfig) {
        precondition(!group.members.isEmpty, "AdamW needs a non-empty parameter group")
        self.group = group; self.config = config
        moments = group.members.map { (Storage(count: $0.params.totalCount), Storage(count: $0.params.totalCount)) }
        decay = group.members.map { member in
            let d = Storage(count: member.params.totalCount)
            for e in member.params.entries where member.trains(e.name) && member.decays(e.name) {
                d.pointer.advanced(by: e.offset).update(repeating: 1, count: e.count)
            }
            return d
        }
        ranges = group.members.map { member in
            var out: [Range<Int>] = []
            for e in member.params.entries where member.trains(e.name) && e.count > 0 {
                if let last = out.last, last.upperBound == e.offset { out[out.count - 1] = last.lowerBound..<e.offset + e.count }
                else { out.append(e.offset..<e.offset + e.count) }
            }
            return out
        }
    }

    /// Biases and LayerNorm weights are not decayed (as in BERT pretraining).
    public static func decays(_ name: String) -> Bool {
        !(name.hasSuffix(".bias") || name.contains("LayerNorm.weight"))
    }

    /// Restore the first member's moments and the step counter (from a checkpoint).
    public func restore(step: Int, m: UnsafeBufferPointer<Float>, v: UnsafeBufferPointer<Float>) {
        precondition(m.count == self.m.count && v.count == self.v.count, "optimizer state size mismatch")
        self.step = step
        self.m.pointer.update(from: m.baseAddress!, count: m.count)
        self.v.pointer.update(from: v.baseAddress!, count: v.count)
    }

    public func zeroGrads() { group.zeroGrads() }

    /// Clip gradients to `maxGradNorm` (as torch.nn.utils.clip_grad_norm_), then apply one
    /// update with learning rate `lr` to the trainable tensors. Returns the gradient norm
    /// before clipping.
    @discardableResult
    public func update(lr: Float) -> Double {
        let norm = group.gradNorm()
        let coef = config.maxGradNorm > 0 ? min(Float(Double(config.maxGradNorm) / (norm + 1e-6)), 1) : 1
        step += 1
        let b1 = config.beta1, b2 = config.beta2, eps = config.eps, wd = lr * config.weightDecay
        let bc1 = 1 - Float(Double(b1).power(step)), bc2Sqrt = (1 - Float(Double(b2).power(step))).squareRoot()
        let stepSize = lr / bc1
        for (k, member) in group.members.enumerated() {
            let g = member.params.grads.pointer, w = member.params.values.pointer
            let m = moments[k].m.pointer, v = moments[k].v.pointer, d = decay[k].pointer
            for range in ranges[k] {
                Parallel.forEach(range.count) { r in
                    for j in r {
                        let i = range.lowerBound + j
                        let gi = g[i] * coef
                        g[i] = gi
                        w[i] *= 1 - wd * d[i]
                        m[i] += (gi - m[i]) * (1 - b1)
                        v[i] = v[i] * b2 + (1 - b2) * gi * gi
                        w[i] -= stepSize * m[i] / (v[i].squareRoot() / bc2Sqrt + eps)
                    }
                }
            }
        }
        return norm
    }
}

extension Double {
    func power(_ n: Int) -> Double { var r = 1.0; for _ in 0..<n { r *= self }; return r }
}
