// Softmax over the last dim of scale * x + mask, for attention scores.
// x [B, ..., Tk]; mask [B, Tk] additive (0 keeps, large negative drops), broadcast over
// the middle dims (heads, queries).

import Foundation

extension Tape {
    public func softmax(_ x: Tensor, scale: Float = 1, additiveMask mask: Tensor? = nil) -> Tensor {
        let Tk = x.lastDim, R = x.rows
        let B = mask?.shape[0] ?? 1
        precondition(mask == nil || (mask!.shape == [B, Tk] && x.shape[0] == B), "softmax \(x.shape) mask \(mask?.shape ?? [])")
        let rowsPerBatch = R / B
        let out = Tensor(uninitialized: x.shape)
        for r in 0..<R {
            let xr = x.data + r * Tk, yr = out.data + r * Tk
            let mr = mask.map { $0.data + (r / rowsPerBatch) * Tk }
            var mx = -Float.infinity
            for k in 0..<Tk { let v = scale * xr[k] + (mr?[k] ?? 0); yr[k] = v; mx = max(mx, v) }
            var s: Float = 0
            for k in 0..<Tk { let e = exp(yr[k] - mx); yr[k] = e; s += e }
            let inv = 1 / s
            for k in 0..<Tk { yr[k] *= inv }
        }
        if needsGrad(x) {
            record(out) {
                let dy = out.grad, dx = x.grad
                for r in 0..<R {
                    let yr = out.data + r * Tk, dyr = dy + r * Tk, dxr = dx + r * Tk
                    var dot: Float = 0
                    for k in 0..<Tk { dot += dyr[k] * yr[k] }
                    for k in 0..<Tk { dxr[k] += scale * yr[k] * (dyr[k] - dot) }
                }
            }
        }
        return out
    }
}
