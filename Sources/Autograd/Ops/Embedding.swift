// Row lookup from a table and its inverse: embedding(ids) and gatherRows(x, rows) share
// one kernel (copy rows forward, scatter-add backward).

extension Tape {
    /// table [V, C], ids (any shape, N total) -> [N, C]. Ids must be in 0..<V. As torch's
    /// nn.Embedding(padding_idx:), lookups of `paddingIndex` pass no gradient to its row.
    public func embedding(_ table: Tensor, ids: [Int32], paddingIndex: Int32? = nil) -> Tensor {
        let V = table.shape[0]
        precondition(table.shape.count == 2, "embedding table \(table.shape)")
        for id in ids { precondition(id >= 0 && Int(id) < V, "embedding id \(id) out of range 0..<\(V)") }
        return gatherRows(table, ids, skipGradientOf: paddingIndex)
    }

    /// x viewed as [R, C]; out[i] = x[rows[i]] -> [rows.count, C].
    public func gatherRows(_ x: Tensor, _ rows: [Int32], skipGradientOf skip: Int32? = nil) -> Tensor {
        let C = x.lastDim
        let out = Tensor(uninitialized: [rows.count, C])
        for (i, r) in rows.enumerated() { (out.data + i * C).update(from: x.data + Int(r) * C, count: C) }
        if needsGrad(x) {
            record(out) {
                let g = x.grad, dy = out.grad
                for (i, r) in rows.enumerated() where r != skip { accumulate(g + Int(r) * C, dy + i * C, C) }
            }
        }
        return out
    }
}

extension Tape {
    /// x viewed as [R, C] with row rows[i] replaced by v[i] -> x's shape. Rows must be distinct.
    /// Backward: replaced rows pass their gradient to v, the others to x. (The write-side
    /// inverse of gatherRows: patching, noising and scaling rows of a site are built on it.)
    public func replaceRows(_ x: Tensor, _ rows: [Int32], with v: Tensor) -> Tensor {
        let C = x.lastDim, R = x.rows
        precondition(v.shape == [rows.count, C], "replaceRows values \(v.shape) for \(rows.count) rows of \(C)")
        precondition(rows.allSatisfy { $0 >= 0 && Int($0) < R } && Set(rows).count == rows.count,
                     "replaceRows: rows must be distinct and in 0..<\(R)")
        let out = Tensor(uninitialized: x.shape)
        out.data.update(from: x.data, count: x.count)
        for (i, r) in rows.enumerated() { (out.data + Int(r) * C).update(from: v.data + i * C, count: C) }
        if needsGrad(x, v) {
            record(out) {
                let dy = out.grad
                if x.requiresGrad {
                    let g = x.grad
                    var replaced = [Bool](repeating: false, count: R)
                    for r in rows { replaced[Int(r)] = true }
                    for r in 0..<R where !replaced[r] { accumulate(g + r * C, dy + r * C, C) }
                }
                if v.requiresGrad {
                    let g = v.grad
                    for (i, r) in rows.enumerated() { accumulate(g + i * C, dy + Int(r) * C, C) }
                }
            }
        }
        return out
    }
}
