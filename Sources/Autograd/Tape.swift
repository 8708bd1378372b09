// Reverse-mode tape: each op computes its output and, when recording and any input needs
// a gradient, pushes a closure that reads out.grad and accumulates into the inputs' grads.

public final class Tape {
    public var recording: Bool
    /// Arithmetic of the `linear` products (bf16: see BF16.swift).
    public let precision: Precision
    private var backwards: [(out: Tensor, run: () -> Void)] = []

    public init(recording: Bool = true, precision: Precision = .fp32) {
        self.recording = recording; self.precision = precision
    }

    // bf16 copies: each parameter's made once and kept until `weightsChanged()`; the latest
    // other input's kept for the next product (Q, K and V read the same input).
    private var bf16Parameters: [UnsafeMutablePointer<Float>: Storage] = [:]
    private var bf16Input: (tensor: Tensor, copy: Storage)?

    /// The bf16 copy of a product's operand.
    func bf16(_ t: Tensor) -> Storage {
        if t.isParameter, let c = bf16Parameters[t.data] { return c }
        if let last = bf16Input, last.tensor === t { return last.copy }
        let c = BF16.copy(t.data, count: t.count)
        if t.isParameter { bf16Parameters[t.data] = c } else { bf16Input = (t, c) }
        return c
    }

    /// Parameter values changed (an optimizer step): their bf16 copies are made anew.
    public func weightsChanged() { bf16Parameters.removeAll() }

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
