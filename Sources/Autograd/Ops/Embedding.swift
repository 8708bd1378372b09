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
