// Tensor: a shaped view of Float32 storage, with an optional gradient of the same shape.
// Row-major (C order). Gradients are allocated on first use and accumulated (+=); the first
// op to reach a gradient may write it instead (`gradTarget`), which saves zeroing it.

public final class Tensor {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    let storage: Storage?          // keeps `data` alive (nil for external memory, e.g. parameter views)
    public var requiresGrad: Bool
    /// A view of a `Parameters` entry (constant within an optimizer step).
    var isParameter = false
    private var gradStorage: Storage?
    private var gradPointer: UnsafeMutablePointer<Float>?

    /// New tensor owning uninitialised memory (for op outputs that overwrite every element).
    init(uninitialized shape: [Int]) {
        let n = shape.reduce(1, *)
        let s = Storage(count: n, zeroed: false)
        self.shape = shape; self.count = n; self.storage = s; self.data = s.pointer
        self.requiresGrad = false
    }

    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        precondition(values.count == shape.reduce(1, *), "values do not fill shape \(shape)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
        self.requiresGrad = requiresGrad
    }

    /// View of memory owned elsewhere (parameter views into a flat buffer). `grad`, when
    /// given, is used as this tensor's gradient buffer.
    public init(view data: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>?, shape: [Int],
                owner: Storage? = nil) {
        self.shape = shape; self.count = shape.reduce(1, *); self.data = data; self.storage = owner
        self.gradPointer = grad; self.requiresGrad = grad != nil
    }

    /// Same memory, new shape (element count must match). Shares the gradient buffer.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "reshape \(shape) -> \(newShape)")
        let t = Tensor(view: data, grad: requiresGrad ? grad : nil, shape: newShape, owner: storage)
        t.parent = self
        return t
    }
    private var parent: Tensor?   // a view keeps its source (and its gradient) alive

    /// View of rows `r` along the first axis (same memory, shared gradient).
    public func slice(rows r: Range<Int>) -> Tensor {
        precondition(!shape.isEmpty && r.lowerBound >= 0 && r.upperBound <= shape[0], "slice \(r) of \(shape)")
        let inner = count / shape[0]
        let t = Tensor(view: data + r.lowerBound * inner, grad: requiresGrad ? grad + r.lowerBound * inner : nil,
                       shape: [r.count] + shape.dropFirst(), owner: storage)
        t.parent = self
        return t
    }

    public var hasGrad: Bool { gradPointer != nil }

    /// Keep this op output's gradient after backward (for attributions over activations).
    public var retainsGrad = false

    /// Free an owned gradient buffer (views of other memory are left alone).
    func releaseGrad() {
        guard gradStorage != nil else { return }
        gradStorage = nil; gradPointer = nil
    }

    /// Gradient buffer, allocated zeroed on first access.
    public var grad: UnsafeMutablePointer<Float> {
        let (g, fresh) = gradTarget()
        if fresh { Parallel.zero(g, count: count) }
        return g
    }

    /// The gradient buffer for a backward step that covers every element: `fresh` when no
    /// gradient has reached this tensor yet, and then the buffer is uninitialised and the step
    /// must write (=) every element instead of adding (+=).
    public func gradTarget() -> (pointer: UnsafeMutablePointer<Float>, fresh: Bool) {
        if let g = gradPointer { return (g, false) }
        let s = Storage(count: count, zeroed: false)
        gradStorage = s; gradPointer = s.pointer
        return (s.pointer, true)
    }

    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }
    public var gradValues: [Float] { Array(UnsafeBufferPointer(start: grad, count: count)) }
    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: data, count: count) }
    public var gradBuffer: UnsafeMutableBufferPointer<Float> { .init(start: grad, count: count) }
    public var scalar: Float { precondition(count == 1); return data[0] }

    /// Rows when viewed as a matrix [rows, lastDim].
    public var rows: Int { shape.isEmpty ? 1 : count / shape[shape.count - 1] }
    public var lastDim: Int { shape.last ?? 1 }
}
