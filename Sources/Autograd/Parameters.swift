// All trainable parameters in one flat buffer (and one flat gradient buffer), with named
// tensor views. Optimizers and checkpoints are loops over `entries`.

public final class Parameters {
    public struct Entry {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let entries: [Entry]
    public let values: Storage   // [total]
    public let grads: Storage    // [total]
    private let views: [Tensor]
    private let index: [String: Int]

    public init(_ specs: [(name: String, shape: [Int])]) {
        var entries: [Entry] = []
        var offset = 0
        for (name, shape) in specs {
            entries.append(Entry(name: name, shape: shape, offset: offset))
            offset += shape.reduce(1, *)
        }
        self.entries = entries
        values = Storage(count: offset)
        grads = Storage(count: offset)
        views = entries.map { [values, grads] e in
            let t = Tensor(view: values.pointer + e.offset, grad: grads.pointer + e.offset, shape: e.shape, owner: values)
            t.isParameter = true
            return t
        }
        var index: [String: Int] = [:]
        for (i, e) in entries.enumerated() {
            precondition(index[e.name] == nil, "duplicate parameter \(e.name)")
            index[e.name] = i
        }
        self.index = index
    }

    public var totalCount: Int { values.count }
    public func contains(_ name: String) -> Bool { index[name] != nil }

    public subscript(_ name: String) -> Tensor {
        guard let i = index[name] else { preconditionFailure("no parameter named \(name)") }
        return views[i]
    }
    public subscript(_ i: Int) -> Tensor { views[i] }

    /// The parameter group: ops differentiate (and record backward steps for) exactly the
    /// parameters whose name satisfies `trainable`; the others are constants.
    public func setTrainable(_ trainable: (String) -> Bool) {
        for (i, e) in entries.enumerated() { views[i].requiresGrad = trainable(e.name) }
    }

    public func zeroGrads() { Parallel.zero(grads.pointer, count: grads.count) }

    /// Global L2 norm of all gradients (accumulated in Double, in fixed chunks so the result
    /// does not depend on timing).
    public func gradNorm() -> Double { gradSquaredNorm().squareRoot() }

    /// Sum of squared gradients (as gradNorm, before the square root).
    public func gradSquaredNorm() -> Double {
        let g = grads.pointer, chunk = 1 << 16
        let n = (grads.count + chunk - 1) / chunk
        var partial = [Double](repeating: 0, count: n)
        partial.withUnsafeMutableBufferPointer { part in
            Parallel.forEach(n, grain: 1) { r in
                for c in r {
                    var s: Float = 0, acc: Double = 0
                    for i in (c * chunk)..<Swift.min((c + 1) * chunk, grads.count) {
                        s += g[i] * g[i]
                        if i & 255 == 255 { acc += Double(s); s = 0 }
                    }
                    part[c] = acc + Double(s)
                }
            }
        }
        return partial.reduce(0, +)
    }

    /// Copy every value from `other` (same layout).
    public func copyValues(from other: Parameters) {
        precondition(other.entries.map(\.shape) == entries.map(\.shape), "parameter layouts differ")
        values.pointer.update(from: other.values.pointer, count: values.count)
    }
}
