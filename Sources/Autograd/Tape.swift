// Reverse-mode tape: each op computes its output and, when recording and any input needs
// a gradient, pushes a closure that reads out.grad and accumulates into the inputs' grads.

public final class Tape {
    public var recording: Bool
    private var backwards: [(out: Tensor, run: () -> Void)] = []

    public init(recording: Bool = true) { self.recording = recording }

    /// Whether an op with these inputs should record a backward step.
    @inline(__always) func needsGrad(_ inputs: Tensor?...) -> Bool {
        recording && inputs.contains { $0?.requiresGrad == true }
    }

    /// Register `out` as differentiable and push its backward closure.
    @inline(__always) func record(_ out: Tensor, _ backward: @escaping () -> Void) {
        out.requiresGrad = true
        backwards.append((out, backward))
    }

    /// Seed d(loss)/d(loss) = 1 and run every recorded backward step in reverse order. Each
    /// step is dropped once it has run, and so is its output's gradient (all consumers have
    /// already contributed to it) unless the output `retainsGrad`: memory falls as backward
    /// proceeds. Leaves (parameters, inputs) keep their gradients.
    public func backward(_ loss: Tensor, seed: Float = 1) {
        precondition(loss.count == 1, "backward needs a scalar loss, got \(loss.shape)")
        loss.grad[0] += seed
        while let step = backwards.popLast() {
            step.run()
            if !step.out.retainsGrad { step.out.releaseGrad() }
        }
    }

    /// Drop recorded steps without running them.
    public func reset() { backwards.removeAll(keepingCapacity: true) }
    public var steps: Int { backwards.count }
}
