// What differs between two checkpoints' weights, found without being told where to look (the
// explorer's audit view, for a model and its edited copy from ROME, MEMIT, a binary mask or a
// finetune saved with --save-edited): per parameter tensor the Frobenius norm of B − A and its
// share of A's; for a matrix also the largest singular value σ₁ of B − A (power iteration) and
// its stable rank ‖B − A‖²_F / σ₁², which is 1 for a rank-one edit (ROME's) and grows with the
// number of directions an edit spreads over (MEMIT's k facts: up to k; a finetune: many).

import Autograd
import Foundation

public struct WeightAudit: Codable, Equatable, Sendable {
    public struct Change: Codable, Equatable, Sendable {
        public var name: String
        public var shape: [Int]
        public var norm: Double              // ‖B − A‖_F
        public var relative: Double          // ‖B − A‖_F / ‖A‖_F (infinite where A is 0)
        public var sigma1: Double?           // matrices: the largest singular value of B − A
        public var stableRank: Double?       // matrices: ‖B − A‖²_F / σ₁²
    }
    public var tensors: Int                  // tensors compared
    public var changed: [Change]             // those that differ at all, the largest relative change first

    /// Power-iteration steps for σ₁ from a fixed start. The estimate only grows toward σ₁, so the
    /// stable rank is an upper bound that tightens with the steps; for a difference of rank one,
    /// the second step is exact. Stops early once σ₁ moves by less than 1e-12 of itself.
    static let iterations = 100

    /// The audit of B against A, or nil when their parameters differ in names or shapes.
    public static func compare(_ a: Parameters, _ b: Parameters) -> WeightAudit? {
        guard a.entries.map(\.name) == b.entries.map(\.name), a.entries.map(\.shape) == b.entries.map(\.shape) else { return nil }
        var changed: [Change] = []
        for (i, e) in a.entries.enumerated() {
            let x = a[i].data, y = b[i].data
            var d = [Double](repeating: 0, count: e.count), diff2 = 0.0, base2 = 0.0
            for j in 0..<e.count {
                d[j] = Double(y[j]) - Double(x[j])
                diff2 += d[j] * d[j]; base2 += Double(x[j]) * Double(x[j])
            }
            guard diff2 > 0 else { continue }
            var c = Change(name: e.name, shape: e.shape, norm: diff2.squareRoot(),
                           relative: base2 > 0 ? (diff2 / base2).squareRoot() : .infinity)
            if e.shape.count == 2 {
                let s = largestSingularValue(d, rows: e.shape[0], columns: e.shape[1])
                c.sigma1 = s; c.stableRank = diff2 / (s * s)
            }
            changed.append(c)
        }
        changed.sort { ($0.relative, $1.name) > ($1.relative, $0.name) }
        return WeightAudit(tensors: a.entries.count, changed: changed)
    }

    /// σ₁ of the row-major rows x columns matrix m: power iteration on mᵀm from a fixed start
    /// vector (all ones plus a ramp, so it is not orthogonal to a top singular vector by accident).
    static func largestSingularValue(_ m: [Double], rows: Int, columns: Int) -> Double {
        var v = (0..<columns).map { 1 + Double($0) / Double(columns) }
        var sigma = 0.0
        for _ in 0..<iterations {
            var u = [Double](repeating: 0, count: rows)
            for r in 0..<rows { var s = 0.0; for c in 0..<columns { s += m[r * columns + c] * v[c] }; u[r] = s }
            var w = [Double](repeating: 0, count: columns)
            for r in 0..<rows where u[r] != 0 { for c in 0..<columns { w[c] += m[r * columns + c] * u[r] } }
            let nv = v.reduce(0) { $0 + $1 * $1 }.squareRoot(), nu = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let estimate = nu / nv                          // ‖m v‖ / ‖v‖ <= σ₁
            if estimate > 0, abs(estimate - sigma) <= 1e-12 * estimate { sigma = max(sigma, estimate); break }
            sigma = max(sigma, estimate)
            let nw = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard nw > 0 else { break }
            v = w.map { $0 / nw }
        }
        return sigma
    }
}
