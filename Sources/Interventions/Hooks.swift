// The interventions every knowledge evaluator is made of, as hooks on named sites (see
// Sites.swift). Each is a composition of tape ops, so d(output)/d(anything upstream or
// the intervention's own tensors) comes from the ordinary backward pass:
//   capture  read the site (returned unchanged)
//   patch    rows of the site take given values (another run's capture, scaled inputs)
//   gradient a zero leaf added to rows of the site (the values stay exact): after backward, its
//            gradient is d(output)/d(site) at those rows (integrated gradients, MEND's factors)
//   scale    rows of the site multiplied elementwise by given factors (knowledge neurons x0/x3)
//   noise    given noise added to rows of the site (causal tracing's corruption)
// Rows index the site viewed as [B*T, D]: row b*T + t is position t of example b.

import Autograd

/// Tensors seen at sites during one forward pass.
public final class Captures {
    public private(set) var tensors: [Site: Tensor] = [:]
    public init() {}
    public subscript(_ site: Site) -> Tensor? { tensors[site] }
    func store(_ site: Site, _ x: Tensor) { tensors[site] = x }
}

extension Interventions {
    /// Store the tensor at each site into `captures`.
    public func capture(_ sites: [Site], into captures: Captures) {
        for s in sites { add(s) { x, _ in captures.store(s, x); return x } }
    }

    /// Row rows[i] of the site takes values[i] ([rows.count, D]).
    public func patch(_ site: Site, rows: [Int32], with values: Tensor) {
        add(site) { x, tape in tape.replaceRows(x, rows, with: values) }
    }

    /// Row rows[i] of the site is multiplied elementwise by factors[i] ([rows.count, D]).
    public func scale(_ site: Site, rows: [Int32], factors: Tensor) {
        add(site) { x, tape in tape.replaceRows(x, rows, with: tape.mul(tape.gatherRows(x, rows), factors)) }
    }

    /// Units `units[i]` of row rows[i] multiplied by k (the other units keep their value).
    public func scale(_ site: Site, rows: [Int32], units: [[Int]], by k: Float, width D: Int) {
        precondition(units.count == rows.count, "scale: one unit list per row")
        var f = [Float](repeating: 1, count: rows.count * D)
        for (i, us) in units.enumerated() { for u in us { f[i * D + u] = k } }
        scale(site, rows: rows, factors: Tensor(f, shape: [rows.count, D]))
    }

    /// d(output)/d(site) at `rows`: the returned leaf [rows.count, D] of zeros is added there,
    /// and after `backward` its `grad` row i is the gradient at row rows[i].
    public func gradient(at site: Site, rows: [Int32], width D: Int) -> Tensor {
        let leaf = Tensor([Float](repeating: 0, count: rows.count * D), shape: [rows.count, D], requiresGrad: true)
        addNoise(site, rows: rows, noise: leaf)
        return leaf
    }

    /// noise[i] ([rows.count, D]) added to row rows[i] of the site.
    public func addNoise(_ site: Site, rows: [Int32], noise: Tensor) {
        add(site) { x, tape in tape.replaceRows(x, rows, with: tape.add(tape.gatherRows(x, rows), noise)) }
    }
}

/// Rows [rows.count, D] of a captured site tensor, as a new constant (or leaf) tensor.
public func copyRows(_ x: Tensor, _ rows: [Int32], scaledBy s: Float = 1, requiresGrad: Bool = false) -> Tensor {
    let D = x.lastDim
    var v = [Float](repeating: 0, count: rows.count * D)
    for (i, r) in rows.enumerated() { for d in 0..<D { v[i * D + d] = s * x.data[Int(r) * D + d] } }
    return Tensor(v, shape: [rows.count, D], requiresGrad: requiresGrad)
}
