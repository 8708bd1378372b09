// Elementwise ops on same-shaped tensors, bias broadcast over rows, and reductions.

extension Tape {
    /// a + b (same shape).
    public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "add \(a.shape) \(b.shape)")
        let out = Tensor(uninitialized: a.shape)
        let x = a.data, y = b.data, o = out.data
        Parallel.forEach(a.count) { r in for i in r { o[i] = x[i] + y[i] } }
        if needsGrad(a, b) {
            record(out) {
                let dy = out.grad
                if a.requiresGrad { accumulate(into: a, dy) }
                if b.requiresGrad { accumulate(into: b, dy) }
            }
        }
        return out
    }

    /// a * b (same shape).
    public func mul(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "mul \(a.shape) \(b.shape)")
        let out = Tensor(uninitialized: a.shape)
        for i in 0..<a.count { out.data[i] = a.data[i] * b.data[i] }
        if needsGrad(a, b) {
            record(out) {
                let dy = out.grad
                if a.requiresGrad { let g = a.grad; for i in 0..<a.count { g[i] += dy[i] * b.data[i] } }
                if b.requiresGrad { let g = b.grad; for i in 0..<b.count { g[i] += dy[i] * a.data[i] } }
            }
        }
        return out
    }

    /// s * x.
    public func scale(_ x: Tensor, _ s: Float) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        for i in 0..<x.count { out.data[i] = s * x.data[i] }
        if needsGrad(x) {
            record(out) { let g = x.grad, dy = out.grad; for i in 0..<x.count { g[i] += s * dy[i] } }
        }
        return out
    }

    /// x [..., C] + b [C].
    public func addBias(_ x: Tensor, _ b: Tensor) -> Tensor {
        let C = x.lastDim, R = x.rows
        precondition(b.shape == [C], "addBias \(x.shape) \(b.shape)")
        let out = Tensor(uninitialized: x.shape)
        for r in 0..<R { for c in 0..<C { out.data[r * C + c] = x.data[r * C + c] + b.data[c] } }
        if needsGrad(x, b) {
            record(out) {
                if x.requiresGrad { accumulate(into: x, out.grad) }
                if b.requiresGrad { sumRows(out.grad, rows: R, cols: C, into: b.grad) }
            }
        }
        return out
    }

    /// Sum of all elements -> scalar [].
    public func sum(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitialized: [])
        var s: Double = 0
        for i in 0..<x.count { s += Double(x.data[i]) }
        out.data[0] = Float(s)
        if needsGrad(x) {
            record(out) { let g = x.grad, d = out.grad[0]; for i in 0..<x.count { g[i] += d } }
        }
        return out
    }

    /// Mean of all elements -> scalar [].
    public func mean(_ x: Tensor) -> Tensor { scale(sum(x), 1 / Float(x.count)) }

    /// Euclidean norm of all elements -> scalar []; its gradient x / |x| is 0 at x = 0 (torch's
    /// choice at the kink, where ROME's value optimisation starts).
    public func norm(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitialized: [])
        var s: Double = 0
        for i in 0..<x.count { s += Double(x.data[i]) * Double(x.data[i]) }
        let n = s.squareRoot()
        out.data[0] = Float(n)
        if needsGrad(x) {
            record(out) {
                guard n > 0 else { return }
                let g = x.grad, k = Double(out.grad[0]) / n
                for i in 0..<x.count { g[i] += Float(k * Double(x.data[i])) }
            }
        }
        return out
    }
}

/// dst[i] += src[i] (split across threads when large)
@inline(__always)
func accumulate(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    Parallel.forEach(n) { r in for i in r { dst[i] += src[i] } }
}

/// t's gradient += src (every element; a copy when t has no gradient yet).
func accumulate(into t: Tensor, _ src: UnsafePointer<Float>) {
    let (g, fresh) = t.gradTarget()
    Parallel.forEach(t.count) { r in store(g, fresh: fresh, r) { src[$0] } }
}

/// g[i] = value(i) when `fresh` (see `Tensor.gradTarget`), else g[i] += value(i), for i in r.
@inline(__always)
func store(_ g: UnsafeMutablePointer<Float>, fresh: Bool, _ r: Range<Int>, _ value: (Int) -> Float) {
    if fresh { for i in r { g[i] = value(i) } } else { for i in r { g[i] += value(i) } }
}

extension Tape {
    /// x [R, C] * s [C] (each column scaled).
    public func scaleColumns(_ x: Tensor, _ s: Tensor) -> Tensor {
        let C = x.lastDim, R = x.rows
        precondition(s.shape == [C], "scaleColumns \(x.shape) \(s.shape)")
        let out = Tensor(uninitialized: x.shape)
        for r in 0..<R { for c in 0..<C { out.data[r * C + c] = x.data[r * C + c] * s.data[c] } }
        if needsGrad(x, s) {
            record(out) {
                let dy = out.grad
                if x.requiresGrad { let g = x.grad; for r in 0..<R { for c in 0..<C { g[r * C + c] += dy[r * C + c] * s.data[c] } } }
                if s.requiresGrad { let g = s.grad; for r in 0..<R { for c in 0..<C { g[c] += dy[r * C + c] * x.data[r * C + c] } } }
            }
        }
        return out
    }

    /// Columns `cols` of x [R, C] -> [R, cols.count].
    public func sliceColumns(_ x: Tensor, _ cols: Range<Int>) -> Tensor {
        let C = x.lastDim, R = x.rows, W = cols.count
        precondition(cols.lowerBound >= 0 && cols.upperBound <= C, "sliceColumns \(cols) of \(x.shape)")
        let out = Tensor(uninitialized: [R, W])
        for r in 0..<R { (out.data + r * W).update(from: x.data + r * C + cols.lowerBound, count: W) }
        if needsGrad(x) {
            record(out) {
                let g = x.grad, dy = out.grad
                for r in 0..<R { accumulate(g + r * C + cols.lowerBound, dy + r * W, W) }
            }
        }
        return out
    }
}
