// AdamW with decoupled weight decay (the torch.optim.AdamW update, step for step), global
// gradient-norm clipping, and no decay on biases and LayerNorm weights.

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
    public let params: Parameters
    public let m: Storage            // first moments, parameter layout
    public let v: Storage            // second moments, parameter layout
    public private(set) var step = 0
    private let decay: Storage       // per element: 1 where weight decay applies, else 0

    public init(_ params: Parameters, config: AdamWConfig) {
        self.params = params; self.config = config
        m = Storage(count: params.totalCount); v = Storage(count: params.totalCount)
        decay = Storage(count: params.totalCount)
        for e in params.entries where AdamW.decays(e.name) {
            decay.pointer.advanced(by: e.offset).update(repeating: 1, count: e.count)
        }
    }

    /// Biases and LayerNorm weights are not decayed (as in BERT pretraining).
    public static func decays(_ name: String) -> Bool {
        !(name.hasSuffix(".bias") || name.contains("LayerNorm.weight"))
    }

    /// Restore moments and the step counter (from a checkpoint).
    public func restore(step: Int, m: UnsafeBufferPointer<Float>, v: UnsafeBufferPointer<Float>) {
        precondition(m.count == self.m.count && v.count == self.v.count, "optimizer state size mismatch")
        self.step = step
        self.m.pointer.update(from: m.baseAddress!, count: m.count)
        self.v.pointer.update(from: v.baseAddress!, count: v.count)
    }

    /// Clip gradients to `maxGradNorm` (as torch.nn.utils.clip_grad_norm_), then apply one
    /// update with learning rate `lr`. Returns the gradient norm before clipping.
    @discardableResult
    public func update(lr: Float) -> Double {
        let norm = params.gradNorm()
        let g = params.grads.pointer
        let coef = config.maxGradNorm > 0 ? min(Float(Double(config.maxGradNorm) / (norm + 1e-6)), 1) : 1
        step += 1
        let b1 = config.beta1, b2 = config.beta2, eps = config.eps, wd = lr * config.weightDecay
        let bc1 = 1 - Float(Double(b1).power(step)), bc2Sqrt = (1 - Float(Double(b2).power(step))).squareRoot()
        let stepSize = lr / bc1
        let w = params.values.pointer, m = m.pointer, v = v.pointer, d = decay.pointer
        Parallel.forEach(params.totalCount) { r in
            for i in r {
                let gi = g[i] * coef
                g[i] = gi
                w[i] *= 1 - wd * d[i]
                m[i] += (gi - m[i]) * (1 - b1)
                v[i] = v[i] * b2 + (1 - b2) * gi * gi
                w[i] -= stepSize * m[i] / (v[i].squareRoot() / bc2Sqrt + eps)
            }
        }
        return norm
    }
}

extension Double {
    func power(_ n: Int) -> Double { var r = 1.0; for _ in 0..<n { r *= self }; return r }
}
