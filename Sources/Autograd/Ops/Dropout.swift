// Inverted dropout with a counter-based mask: element i is dropped when
// uniform(key, i) < p, kept ones are scaled by 1/(1-p). The key fixes the mask.

extension Tape {
    public func dropout(_ x: Tensor, p: Float, rng: CounterRNG) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout p \(p)")
        if p == 0 { return x }
        let mask = Storage(count: x.count, zeroed: false)
        let out = Tensor(uninitialized: x.shape)
        dropoutMask(rng, p: p, into: mask.pointer, count: x.count)
        let xs = x.data, ys = out.data
        Parallel.forEach(x.count) { r in for i in r { ys[i] = xs[i] * mask.pointer[i] } }
        if needsGrad(x) {
            record(out) {
                let (g, fresh) = x.gradTarget(), dy = out.grad, m = mask.pointer   // the closure keeps `mask` alive
                Parallel.forEach(x.count) { r in store(g, fresh: fresh, r) { dy[$0] * m[$0] } }
            }
        }
        return out
    }
}

/// m[i] = 0 when uniform(rng, i) < p, else 1/(1-p), for i in 0..<count (in parallel).
func dropoutMask(_ rng: CounterRNG, p: Float, into m: UnsafeMutablePointer<Float>, count: Int) {
    Parallel.forEach((count + 3) / 4, grain: 4096) { blocks in
        let lo = 4 * blocks.lowerBound, hi = min(4 * blocks.upperBound, count)
        dropoutMask(rng, p: p, into: m + lo, counters: lo..<hi)
    }
}

/// m[i - counters.lowerBound] = 0 when uniform(rng, i) < p, else 1/(1-p), for i in `counters`
/// (on the calling thread). Whole blocks of four counters share one hash, unrolled.
@inline(__always)
func dropoutMask(_ rng: CounterRNG, p: Float, into m: UnsafeMutablePointer<Float>, counters: Range<Int>) {
    let keep = 1 / (1 - p)
    let threshold = UInt64((p * 65536).rounded(.up))   // uniform < p  <=>  16-bit value < ceil(p * 2^16)
    @inline(__always) func value(_ bits: UInt64, _ k: Int) -> Float { (bits >> UInt64(16 * k)) & 0xFFFF < threshold ? 0 : keep }
    let o = counters.lowerBound
    var i = o
    while i < counters.upperBound && i & 3 != 0 { m[i - o] = value(rng.bits16(i >> 2), i & 3); i += 1 }
    while i + 4 <= counters.upperBound {
        let bits = rng.bits16(i >> 2), d = m + (i - o)
        d[0] = value(bits, 0); d[1] = value(bits, 1); d[2] = value(bits, 2); d[3] = value(bits, 3)
        i += 4
    }
    while i < counters.upperBound { m[i - o] = value(rng.bits16(i >> 2), i & 3); i += 1 }
}
