// The tests' tolerances are derived, not observed: the unit roundoffs and the error bounds of
// floating-point reductions the test comments cite. Every bound here holds for ANY summation
// order and blocking (any OpenBLAS or oneDNN kernel, any split across threads, FMA or not),
// so a tolerance built from them holds on every CPU, not only on the one it was tried on.
//
// A sum or dot product of n terms t_1..t_n, S = Σ|t_i| (S = |Σ t_i| when the terms share a sign):
//  - worst case:    |fl(s) - s| <= γ_n S,  γ_n = n u / (1 - n u)
//                   (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §3.1, eq. 3.5);
//  - probabilistic: |fl(s) - s| <= λ √n u S with probability >= 1 - 2n exp(-λ²/2), rounding errors
//                   modelled as independent and of mean zero (Higham & Mary, SIAM J. Sci. Comput.
//                   41 (2019), Thm 3.1); λ = 6 fails with probability <= 3e-8 n per element.
// d such stages one after another (a layer's products), each passing a relative error on without
// amplifying it, have first-order relative error up to the sum of their bounds (worst case:
// d γ_n; probabilistic: the errors add in quadrature, λ √(d n) u). For zero-mean data, as in
// these tests, `rms` gives the RMS of the error, u √(d n / 6); relative errors of whole tensors
// (assertNormClose) concentrate at it, single elements stay within 6 of it.
// Two implementations (droplab and a PyTorch fixture, two kernels) differ by √2 times one's error.

import Foundation

public enum Tolerance {
    /// float32 unit roundoff 2^-24 = 5.96e-8 (24 significant bits, round to nearest).
    public static let float32 = 0x1p-24
    /// bf16 unit roundoff 2^-8 = 3.91e-3 (8 significant bits).
    public static let bf16 = 0x1p-8
    /// Float64 unit roundoff 2^-53 = 1.11e-16.
    public static let float64 = 0x1p-53

    /// γ_n = n u / (1 - n u): worst-case relative error, against Σ|terms|, of an n-term sum or
    /// dot product in any order.
    public static func worstCase(_ n: Int, u: Double = float32) -> Double {
        Double(n) * u / (1 - Double(n) * u)
    }

    /// λ √n u: probabilistic bound, against Σ|terms|, of an n-term reduction in any order
    /// (fails with probability <= 2n exp(-λ²/2): λ = 6, 3e-8 n; λ = 1 is the RMS value).
    public static func probabilistic(_ n: Int, u: Double = float32, lambda: Double = 6) -> Double {
        lambda * Double(n).squareRoot() * u
    }

    /// First-order worst-case relative error of `depth` stages, each a reduction of at most
    /// `reduction` terms, in float32: depth γ_reduction.
    public static func float32Bound(depth: Int, reduction: Int) -> Double {
        Double(depth) * worstCase(reduction)
    }

    /// RMS error, relative to the RMS of the results, of `depth` stages each a sum or dot product
    /// of `reduction` zero-mean terms: u √(depth reduction / 6). A rounding error (uniform in ±u,
    /// RMS u/√3) scales a partial sum; summing one term after the other, where the j-th partial sum
    /// has RMS √j, is the worst order (it maximises Σ over roundings of the partial sums' sizes),
    /// so the value holds for every kernel's order. Terms of one sign give u √(reduction) / 3, less.
    /// One element stays within 6 RMS but with probability 2e-9 (Gaussian tail of many roundings).
    public static func rms(depth: Int = 1, reduction: Int, u: Double = float32) -> Double {
        u * (Double(depth * reduction) / 6).squareRoot()
    }

    /// Central differences in Float64 with step h, of a function whose value and third
    /// derivative are of order 1: truncation h²/6 |f'''| plus rounding u64 |f| / h.
    public static func centralDifference(h: Double) -> Double {
        h * h / 6 + float64 / h
    }

    /// Standard error of a proportion p estimated from n independent trials, √(p(1-p)/n). A
    /// bound of z standard errors fails with probability 2Φ(-z): z = 4, 6e-5; z = 6, 2e-9.
    public static func proportionSE(_ p: Double, _ n: Int) -> Double {
        (p * (1 - p) / Double(n)).squareRoot()
    }
}
