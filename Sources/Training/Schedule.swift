// Learning-rate schedules: linear warmup to the peak, then linear or cosine decay to zero.

import Foundation

public struct LRSchedule: Codable, Equatable, Sendable {
    public enum Decay: String, Codable, Sendable, CaseIterable { case linear, cosine, constant }
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: Decay
    public init(peak: Float, warmupSteps: Int, totalSteps: Int, decay: Decay = .linear) {
        self.peak = peak; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps; self.decay = decay
    }

    /// Learning rate for 0-based `step`.
    public func lr(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let span = max(totalSteps - warmupSteps, 1)
        let t = min(Float(step - warmupSteps) / Float(span), 1)
        switch decay {
        case .constant: return peak
        case .linear: return peak * (1 - t)
        case .cosine: return peak * 0.5 * (1 + Float(cos(Double.pi * Double(t))))
        }
    }
}
