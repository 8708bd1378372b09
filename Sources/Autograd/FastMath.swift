// Branch-free exp and normal CDF/PDF for the elementwise kernels, written as scalar code
// that LLVM vectorises inside simple loops (no libm calls, no SIMD-type generics).
// exp: Cephes-style range reduction and a degree-6 polynomial (relative error ~1e-7); 0 below -87.3.
// erf: Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), sharing exp(-z^2) with the PDF.

@inline(__always)
public func fastExp(_ x0: Float) -> Float {
    let x = Swift.min(Swift.max(x0, -87.3), 88.7)
    let n = (x * 1.442_695_04 + 12_582_912) - 12_582_912          // round to nearest (1.5 * 2^23 trick)
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    let e = p * r * r + r + 1
    let scale = Float(bitPattern: UInt32(bitPattern: Int32(n) &+ 127) &<< 23)
    return x0 < -87.3 ? 0 : e * scale
}

/// Phi(x) and phi(x) of the standard normal: GELU(x) = x Phi(x), GELU'(x) = Phi + x phi.
@inline(__always)
public func normalCdfPdf(_ x: Float) -> (cdf: Float, pdf: Float) {
    let z = Swift.abs(x) * 0.707_106_781_186_547_5                // |x| / sqrt 2
    let t = 1 / (1 + 0.327_591_1 * z)
    var poly: Float = 1.061_405_429
    poly = poly * t - 1.453_152_027
    poly = poly * t + 1.421_413_741
    poly = poly * t - 0.284_496_736
    poly = poly * t + 0.254_829_592
    let g = fastExp(-z * z)                                        // exp(-x^2 / 2)
    let erfAbs = 1 - poly * t * g
    let erf = x < 0 ? -erfAbs : erfAbs
    return (0.5 * (1 + erf), g * 0.398_942_280_401_432_7)
}
