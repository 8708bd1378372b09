// Inverted dropout with a counter-based mask: element i is dropped when
// uniform(key, i) < p, kept ones are scaled by 1/(1-p). The key fixes the mask.

extension Tape {
    public func dropout(_ x: Tensor, p: Float, rng: CounterRNG) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout p \(p)")
        if p == 0 { return x }
        let keep = 1 / (1 - p)
        let mask = Storage(count: x.count, zeroed: false)
        let out = Tensor(uninitialized: x.shape)
        for i in 0..<x.count {
            let m: Float = rng.uniform(i) < p ? 0 : keep
            mask.pointer[i] = m
            out.data[i] = x.data[i] * m
        }
        if needsGrad(x) {
            record(out) {
                let g = x.grad, dy = out.grad, m = mask.pointer
                for i in 0..<x.count { g[i] += dy[i] * m[i] }
            }
        }
        return out
    }
}
