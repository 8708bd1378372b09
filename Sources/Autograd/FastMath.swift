// Branch-free exp and normal CDF/PDF for the elementwise kernels, written as scalar code
// that LLVM vectorises inside simple loops (no libm calls, no SIMD-type generics).
// exp: Cephes-style range reduction and a degree-6 polynomial (relative error ~1e-7); 0 below -87.3.
// erf: Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), sharing exp(-z^2) with the PDF.

@inline(__always)
public func fastExp(_ x0: Float) -> Float {
    let x = Swift.min(Swift.max(x0, -87.3), 88.7)
    let t = x * 1.442_695_04 + 12_582_912                          // round to nearest (1.5 * 2^23 trick):
    let n = t - 12_582_912                                         // t's low mantissa bits hold n
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    let e = p * r * r + r + 1
    // 2^n from t's bits, not Int32(n), whose overflow check keeps LLVM from vectorising callers
    let scale = Float(bitPattern: (t.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
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

// Reductions with 8 independent lanes: Swift does not reassociate float sums, so a plain
// `s += x[i]` loop is one long dependency chain; these keep eight.

/// sum of x[0..<n]
@inline(__always)
public func vsum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= n { acc += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self); i += 8 }
    var s = acc.sum()
    while i < n { s += x[i]; i += 1 }
    return s
}

/// sum of term(i) for i in 0..<n
@inline(__always)
public func vsum(_ n: Int, _ term: (Int) -> Float) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= n {
        acc += SIMD8(term(i), term(i + 1), term(i + 2), term(i + 3), term(i + 4), term(i + 5), term(i + 6), term(i + 7))
        i += 8
    }
    var s = acc.sum()
    while i < n { s += term(i); i += 1 }
    return s
}

/// sum of a[i] * b[i]
@inline(__always)
public func vdot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= n {
        acc += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// max of x[0..<n] (n > 0)
@inline(__always)
public func vmax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var m0 = x[0], m1 = x[0], m2 = x[0], m3 = x[0], m4 = x[0], m5 = x[0], m6 = x[0], m7 = x[0]
    var i = 0
    while i + 8 <= n {
        m0 = Swift.max(m0, x[i]); m1 = Swift.max(m1, x[i + 1]); m2 = Swift.max(m2, x[i + 2]); m3 = Swift.max(m3, x[i + 3])
        m4 = Swift.max(m4, x[i + 4]); m5 = Swift.max(m5, x[i + 5]); m6 = Swift.max(m6, x[i + 6]); m7 = Swift.max(m7, x[i + 7])
        i += 8
    }
    var m = Swift.max(Swift.max(Swift.max(m0, m1), Swift.max(m2, m3)), Swift.max(Swift.max(m4, m5), Swift.max(m6, m7)))
    while i < n { m = Swift.max(m, x[i]); i += 1 }
    return m
}
