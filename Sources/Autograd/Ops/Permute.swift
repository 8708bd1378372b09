// Axis permutation: out.shape[i] = x.shape[perm[i]]. Used to split/merge attention heads
// ([B, T, NH, HS] <-> [B, NH, T, HS]). Backward is the inverse permutation.

extension Tape {
    public func permute(_ x: Tensor, _ perm: [Int]) -> Tensor {
        precondition(perm.sorted() == Array(0..<x.shape.count), "permute \(x.shape) by \(perm)")
        let outShape = perm.map { x.shape[$0] }
        let out = Tensor(uninitialized: outShape)
        permuteCopy(from: x.data, shape: x.shape, perm: perm, to: out.data, accumulate: false)
        if needsGrad(x) {
            var inverse = perm
            for (i, p) in perm.enumerated() { inverse[p] = i }
            record(out) { permuteCopy(from: out.grad, shape: outShape, perm: inverse, to: x.grad, accumulate: true) }
        }
        return out
    }
}

/// dst = permutation of src (or dst += when accumulating). Copies contiguous inner runs
/// when the last axis stays last.
func permuteCopy(from src: UnsafePointer<Float>, shape: [Int], perm: [Int], to dst: UnsafeMutablePointer<Float>,
                 accumulate: Bool) {
    let rank = shape.count
    var srcStrides = [Int](repeating: 1, count: rank)
    for i in stride(from: rank - 2, through: 0, by: -1) { srcStrides[i] = srcStrides[i + 1] * shape[i + 1] }
    let outShape = perm.map { shape[$0] }
    let stridesInOut = perm.map { srcStrides[$0] }   // source stride of each output axis
    let inner = perm.last == rank - 1 ? outShape[rank - 1] : 1
    let outer = outShape.reduce(1, *) / inner
    let loopRank = inner == 1 ? rank : rank - 1
    var idx = [Int](repeating: 0, count: loopRank)
    var srcOff = 0
    for o in 0..<outer {
        let d = dst + o * inner, s = src + srcOff
        if accumulate { for k in 0..<inner { d[k] += s[k] } } else { d.update(from: s, count: inner) }
        // advance the multi-index over the output axes (last fastest)
        var a = loopRank - 1
        while a >= 0 {
            idx[a] += 1; srcOff += stridesInOut[a]
            if idx[a] < outShape[a] { break }
            srcOff -= stridesInOut[a] * outShape[a]; idx[a] = 0; a -= 1
        }
    }
}
