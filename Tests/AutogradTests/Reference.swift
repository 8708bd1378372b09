// Naive Float64 reference forwards for every autograd op: plain loops over [Double],
// written from the math, independent of the engine's kernels. The gradient checks
// differentiate these numerically.

import Foundation

/// A row-major Float64 array with its shape.
struct Ref {
    var shape: [Int]
    var v: [Double]

    init(_ shape: [Int], _ v: [Double]) {
        precondition(v.count == shape.reduce(1, *), "Ref \(shape) with \(v.count) values")
        self.shape = shape; self.v = v
    }
    init(zeros shape: [Int]) { self.init(shape, [Double](repeating: 0, count: shape.reduce(1, *))) }
    static func scalar(_ x: Double) -> Ref { Ref([], [x]) }

    var count: Int { v.count }
    var lastDim: Int { shape.last ?? 1 }
    var rows: Int { count / max(lastDim, 1) }
}

/// Row-major strides of a shape.
func rowMajorStrides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
    return s
}

// MARK: - Matrix products

/// Batched op(A) op(B) over matching leading dims; op(X) transposes the last two dims.
func refMatmul(_ a: Ref, _ b: Ref, transposeA ta: Bool = false, transposeB tb: Bool = false) -> Ref {
    let n = a.shape.count
    precondition(n >= 2 && b.shape.count == n && Array(a.shape.prefix(n - 2)) == Array(b.shape.prefix(n - 2)))
    let ra = a.shape[n - 2], ca = a.shape[n - 1], rb = b.shape[n - 2], cb = b.shape[n - 1]
    let M = ta ? ca : ra, K = ta ? ra : ca, N = tb ? rb : cb
    precondition(K == (tb ? cb : rb))
    let G = a.shape.prefix(n - 2).reduce(1, *)
    var out = Ref(zeros: Array(a.shape.prefix(n - 2)) + [M, N])
    // element (i, k) of op(A) in batch g, and (k, j) of op(B)
    func A(_ g: Int, _ i: Int, _ k: Int) -> Double { a.v[g * ra * ca + (ta ? k * ca + i : i * ca + k)] }
    func B(_ g: Int, _ k: Int, _ j: Int) -> Double { b.v[g * rb * cb + (tb ? j * cb + k : k * cb + j)] }
    for g in 0..<G {
        for i in 0..<M {
            for j in 0..<N {
                var s = 0.0
                for k in 0..<K { s += A(g, i, k) * B(g, k, j) }
                out.v[g * M * N + i * N + j] = s
            }
        }
    }
    return out
}

/// x [..., I], w [O, I], b [O] -> x w^T + b.
func refLinear(_ x: Ref, _ w: Ref, _ b: Ref?) -> Ref {
    let I = x.lastDim, O = w.shape[0], R = x.rows
    precondition(w.shape == [O, I])
    var out = Ref(zeros: Array(x.shape.dropLast()) + [O])
    for r in 0..<R {
        for o in 0..<O {
            var s = b?.v[o] ?? 0
            for i in 0..<I { s += x.v[r * I + i] * w.v[o * I + i] }
            out.v[r * O + o] = s
        }
    }
    return out
}

// MARK: - Elementwise and reductions

func refMap(_ x: Ref, _ f: (Double) -> Double) -> Ref { Ref(x.shape, x.v.map(f)) }

func refAdd(_ a: Ref, _ b: Ref) -> Ref {
    precondition(a.shape == b.shape)
    return Ref(a.shape, (0..<a.count).map { a.v[$0] + b.v[$0] })
}

func refMul(_ a: Ref, _ b: Ref) -> Ref {
    precondition(a.shape == b.shape)
    return Ref(a.shape, (0..<a.count).map { a.v[$0] * b.v[$0] })
}

func refAddBias(_ x: Ref, _ b: Ref) -> Ref {
    let C = x.lastDim
    precondition(b.shape == [C])
    return Ref(x.shape, (0..<x.count).map { x.v[$0] + b.v[$0 % C] })
}

func refSum(_ x: Ref) -> Ref { .scalar(x.v.reduce(0, +)) }
func refMean(_ x: Ref) -> Ref { .scalar(x.v.reduce(0, +) / Double(x.count)) }
func refNorm(_ x: Ref) -> Ref { .scalar(x.v.reduce(0) { $0 + $1 * $1 }.squareRoot()) }

func refGelu(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }

// MARK: - Normalisation

/// Per row of the last dim: (x - mean) / sqrt(var + eps) * gamma + beta (biased variance).
func refLayerNorm(_ x: Ref, _ gamma: Ref, _ beta: Ref, eps: Double) -> Ref {
    let C = x.lastDim
    var out = Ref(zeros: x.shape)
    for r in 0..<x.rows {
        let row = Array(x.v[r * C ..< (r + 1) * C])
        let mean = row.reduce(0, +) / Double(C)
        let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(C)
        let denom = (variance + eps).squareRoot()
        for c in 0..<C { out.v[r * C + c] = (row[c] - mean) / denom * gamma.v[c] + beta.v[c] }
    }
    return out
}

/// Softmax over the last dim of scale * x + mask[b, k]; x [B, ..., Tk], mask [B, Tk].
func refSoftmax(_ x: Ref, scale: Double, mask: Ref?) -> Ref {
    let Tk = x.lastDim, B = x.shape[0]
    let rowsPerBatch = x.rows / B
    var out = Ref(zeros: x.shape)
    for r in 0..<x.rows {
        let b = r / rowsPerBatch
        let z = (0..<Tk).map { k in scale * x.v[r * Tk + k] + (mask?.v[b * Tk + k] ?? 0) }
        let m = z.max()!
        let e = z.map { exp($0 - m) }
        let s = e.reduce(0, +)
        for k in 0..<Tk { out.v[r * Tk + k] = e[k] / s }
    }
    return out
}

// MARK: - Indexing

/// x viewed as [R, C]; out[i] = x[rows[i]].
func refGatherRows(_ x: Ref, _ rows: [Int32]) -> Ref {
    let C = x.lastDim
    var out = Ref(zeros: [rows.count, C])
    for (i, r) in rows.enumerated() { for c in 0..<C { out.v[i * C + c] = x.v[Int(r) * C + c] } }
    return out
}

/// out[i0, i1, ...] = x[j] where j's axis perm[a] index is i_a.
func refPermute(_ x: Ref, _ perm: [Int]) -> Ref {
    let outShape = perm.map { x.shape[$0] }
    let xStrides = rowMajorStrides(x.shape)
    var out = Ref(zeros: outShape)
    for o in 0..<out.count {
        var rem = o, src = 0
        for a in stride(from: outShape.count - 1, through: 0, by: -1) {
            let i = rem % outShape[a]; rem /= outShape[a]
            src += i * xStrides[perm[a]]
        }
        out.v[o] = x.v[src]
    }
    return out
}

// MARK: - Loss

/// Mean over rows whose target != ignoreIndex of logsumexp(row) - row[target]; 0 if none.
/// log sum exp(row), shifted by the row's maximum.
func refLogSumExp(_ row: [Double]) -> Double {
    let m = row.max()!
    return m + log(row.map { exp($0 - m) }.reduce(0, +))
}

func refCrossEntropy(_ logits: Ref, targets: [Int32], ignoreIndex: Int32) -> Ref {
    let V = logits.lastDim
    var total = 0.0, valid = 0
    for (n, t) in targets.enumerated() where t != ignoreIndex {
        let row = Array(logits.v[n * V ..< (n + 1) * V])
        total += refLogSumExp(row) - row[Int(t)]
        valid += 1
    }
    return .scalar(valid > 0 ? total / Double(valid) : 0)
}

// MARK: - Attention

/// Multi-head attention weights from q, k [B*T, C] (head h = columns h*HS..<(h+1)*HS):
/// P = softmax(QK^T / sqrt(HS) + mask[b]) per (b, h), P' = P * factors[(b*NH + h)*T*T + i*T + j]
/// (the dropout factors, 0 or 1/(1-p)), as [B*T, NH*T]: row b*T + i, column h*T + j.
func refAttentionProbs(_ q: Ref, _ k: Ref, batch B: Int, heads NH: Int, mask: Ref?, factors: [Double]?) -> Ref {
    let C = q.lastDim, T = q.rows / B, HS = C / NH
    let scale = 1 / Double(HS).squareRoot()
    var out = Ref(zeros: [B * T, NH * T])
    for b in 0..<B {
        for h in 0..<NH {
            for i in 0..<T {
                var z = [Double](repeating: 0, count: T)
                for j in 0..<T {
                    var s = 0.0
                    for d in 0..<HS { s += q.v[(b * T + i) * C + h * HS + d] * k.v[(b * T + j) * C + h * HS + d] }
                    z[j] = scale * s + (mask?.v[b * T + j] ?? 0)
                }
                let m = z.max()!
                let e = z.map { exp($0 - m) }
                let sum = e.reduce(0, +)
                for j in 0..<T { out.v[(b * T + i) * NH * T + h * T + j] = e[j] / sum * (factors?[((b * NH + h) * T + i) * T + j] ?? 1) }
            }
        }
    }
    return out
}

/// ctx [B*T, C] from the attention weights [B*T, NH*T] (as `refAttentionProbs`) and the values.
func refAttentionContext(_ probs: Ref, _ v: Ref, batch B: Int, heads NH: Int) -> Ref {
    let C = v.lastDim, T = v.rows / B, HS = C / NH
    var out = Ref(zeros: v.shape)
    for b in 0..<B {
        for h in 0..<NH {
            for i in 0..<T {
                for j in 0..<T {
                    let pr = probs.v[(b * T + i) * NH * T + h * T + j]
                    for d in 0..<HS { out.v[(b * T + i) * C + h * HS + d] += pr * v.v[(b * T + j) * C + h * HS + d] }
                }
            }
        }
    }
    return out
}
