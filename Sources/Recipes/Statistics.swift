// Statistics for the report: mean, sample standard deviation, Student-t quantiles and
// p-values (through the regularized incomplete beta function), 95% t-intervals, the paired
// t-test with the t-interval of the mean difference, the comparison of per-unit values paired
// within seeds and combined over seeds, and Holm's step-down correction. Everything is Double
// and deterministic.

import Foundation

public enum Statistics {
    public static func mean(_ x: [Double]) -> Double {
        x.isEmpty ? .nan : x.reduce(0, +) / Double(x.count)
    }

    /// Sample standard deviation (n - 1 in the denominator); nan for fewer than 2 values.
    public static func sampleSD(_ x: [Double]) -> Double {
        guard x.count >= 2 else { return .nan }
        let m = mean(x)
        let ss = x.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        return (ss / Double(x.count - 1)).squareRoot()
    }

    /// ln Γ(x) for x > 0.
    static func logGamma(_ x: Double) -> Double { lgamma(x) }

    /// The regularized incomplete beta function I_x(a, b), by the continued fraction of
    /// Numerical Recipes §6.4 evaluated with the modified Lentz method.
    public static func incompleteBeta(_ x: Double, _ a: Double, _ b: Double) -> Double {
        precondition(a > 0 && b > 0, "incompleteBeta needs a, b > 0")
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let lnFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * log(x) + b * log1p(-x)
        // the continued fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry otherwise
        if x < (a + 1) / (a + b + 2) {
            return exp(lnFront) * betaContinuedFraction(x, a, b) / a
        }
        return 1 - exp(lnFront) * betaContinuedFraction(1 - x, b, a) / b
    }

    static func betaContinuedFraction(_ x: Double, _ a: Double, _ b: Double) -> Double {
        let tiny = 1e-300, eps = 1e-16
        let qab = a + b, qap = a + 1, qam = a - 1
        var c = 1.0
        var d = 1 - qab * x / qap
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...10_000 {
            let m = Double(m), m2 = 2 * m
            // even step
            var aa = m * (b - m) * x / ((qam + m2) * (a + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            // odd step
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < eps { break }
        }
        return h
    }

    /// P(|T| >= |t|) for Student's t with `df` degrees of freedom.
    public static func studentTTwoSided(_ t: Double, df: Double) -> Double {
        guard t.isFinite else { return t.isNaN ? .nan : 0 }
        return incompleteBeta(df / (df + t * t), df / 2, 0.5)
    }

    /// P(T <= t).
    public static func studentTCDF(_ t: Double, df: Double) -> Double {
        let tail = studentTTwoSided(t, df: df) / 2
        return t >= 0 ? 1 - tail : tail
    }

    /// The p-quantile of Student's t (0 < p < 1), by bisection on the CDF.
    public static func studentTQuantile(_ p: Double, df: Double) -> Double {
        precondition(p > 0 && p < 1 && df > 0)
        if p == 0.5 { return 0 }
        if p < 0.5 { return -studentTQuantile(1 - p, df: df) }
        var lo = 0.0, hi = 1.0
        while studentTCDF(hi, df: df) < p { lo = hi; hi *= 2 }
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if mid == lo || mid == hi { break }
            if studentTCDF(mid, df: df) < p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    public struct Summary: Equatable, Sendable {
        public var n: Int
        public var mean: Double
        public var sd: Double             // nan when n < 2
        public var halfWidth: Double      // 95% t-interval half-width; nan when n < 2
    }

    /// Mean and the 95% t-interval half-width t_{0.975, n-1} sd / sqrt(n).
    public static func summarize(_ x: [Double], level: Double = 0.95) -> Summary {
        let m = mean(x), sd = sampleSD(x)
        guard x.count >= 2 else { return Summary(n: x.count, mean: m, sd: .nan, halfWidth: .nan) }
        let t = studentTQuantile(1 - (1 - level) / 2, df: Double(x.count - 1))
        return Summary(n: x.count, mean: m, sd: sd, halfWidth: t * sd / Double(x.count).squareRoot())
    }

    public struct PairedTest: Equatable, Sendable {
        public var n: Int
        public var meanDifference: Double
        public var t: Double?             // nil: fewer than 2 pairs or zero variance
        public var p: Double?
        public var low: Double?           // 95% t-interval of the mean difference; nil when t is
        public var high: Double?
        /// Pairs per seed when the pairs were units within seeds (see `unitPaired`).
        public var units: [Int]? = nil
    }

    /// Paired t-test of x against y (x[i] and y[i] from the same seed); two-sided p and the
    /// t-interval mean ± t_{1-α/2, n-1} sd / sqrt(n) of the mean difference.
    public static func pairedTTest(_ x: [Double], _ y: [Double], level: Double = 0.95) -> PairedTest {
        precondition(x.count == y.count)
        let d = zip(x, y).map { $0 - $1 }
        // a mean difference at rounding level (e.g. 1e-15 from percentages) is zero
        let magnitude = (x + y).map(abs).max() ?? 0
        let m = abs(mean(d)) <= 1e-12 * magnitude ? 0 : mean(d)
        guard d.count >= 2 else { return PairedTest(n: d.count, meanDifference: m, t: nil, p: nil) }
        let sd = sampleSD(d)
        // differences equal up to rounding (e.g. the same count of pairs flipped): no test
        let scale = d.map(abs).max() ?? 0
        guard sd.isFinite, sd > 1e-9 * scale else { return PairedTest(n: d.count, meanDifference: m, t: nil, p: nil) }
        let se = sd / Double(d.count).squareRoot()
        let t = m / se, df = Double(d.count - 1)
        let half = studentTQuantile(1 - (1 - level) / 2, df: df) * se
        return PairedTest(n: d.count, meanDifference: m, t: t, p: studentTTwoSided(t, df: df), low: m - half, high: m + half)
    }

    /// Per-unit values (concepts or probes) of two variants, paired within each seed: the units
    /// both have give differences x - y, whose mean is the seed's paired difference. With two or
    /// more seeds those per-seed means are the replicates (mean, t-interval and t-test over
    /// seeds, n - 1 degrees of freedom): units of one seed share a model and are not independent
    /// replications of the comparison. With one seed, the unit differences of that seed are the
    /// pairs. Seeds with no common unit are left out (n counts the seeds used).
    public static func unitPaired(_ seeds: [(x: [String: Double], y: [String: Double])], level: Double = 0.95) -> PairedTest {
        var perSeed: [(x: [Double], y: [Double])] = []
        for s in seeds {
            let common = s.x.keys.filter { s.y[$0] != nil }.sorted()
            if !common.isEmpty { perSeed.append((common.map { s.x[$0]! }, common.map { s.y[$0]! })) }
        }
        let units = perSeed.map(\.x.count)
        guard !perSeed.isEmpty else { return PairedTest(n: 0, meanDifference: .nan, t: nil, p: nil, units: []) }
        var test: PairedTest
        if perSeed.count == 1 {
            test = pairedTTest(perSeed[0].x, perSeed[0].y, level: level)
        } else {
            let d = perSeed.map { mean(zip($0.x, $0.y).map { $0 - $1 }) }
            test = pairedTTest(d, [Double](repeating: 0, count: d.count), level: level)
        }
        test.n = perSeed.count
        test.units = units
        return test
    }

    /// Holm's step-down adjustment of p-values that form one family (the rows of a table):
    /// sorted ascending, the i-th smallest (from 0) becomes min(1, max over j <= i of (m - j) p_(j)),
    /// m the number of p-values given. nil (no test) stays nil and does not count in m.
    public static func holm(_ p: [Double?]) -> [Double?] {
        let tested = p.indices.filter { p[$0] != nil }.sorted { (p[$0]!, $0) < (p[$1]!, $1) }
        let m = tested.count
        var out = [Double?](repeating: nil, count: p.count)
        var running = 0.0
        for (j, i) in tested.enumerated() {
            running = max(running, min(1, Double(m - j) * p[i]!))
            out[i] = running
        }
        return out
    }
}

/// Fixed number formatting for reports: the same value always prints the same way.
public enum NumberFormat {
    /// 4 significant digits in fixed notation; integers of 1000 and more as whole numbers;
    /// scientific notation below 1e-4. "n/a" for nan.
    public static func value(_ x: Double, digits: Int = 4) -> String {
        guard x.isFinite else { return x.isNaN ? "n/a" : (x > 0 ? "inf" : "-inf") }
        if x == 0 { return "0" }
        let a = abs(x)
        let s: String
        if a >= pow(10, Double(digits - 1)) {
            s = String(format: "%.0f", x)
        } else if a < 1e-4 {
            s = String(format: "%.\(digits - 1)e", x)
        } else {
            let decimals = max(0, digits - 1 - Int(floor(log10(a))))
            s = String(format: "%.\(decimals)f", x)
        }
        return s == "-0" || s.hasPrefix("-0") && Double(s) == 0 ? String(s.dropFirst()) : s
    }

    /// A signed difference: "+0.1234" / "-0.1234".
    public static func signed(_ x: Double, digits: Int = 4) -> String {
        let s = value(x, digits: digits)
        return x > 0 && x.isFinite ? "+" + s : s
    }

    /// A p-value with 3 significant digits, "<0.0001" below that.
    public static func pValue(_ p: Double?) -> String {
        guard let p, p.isFinite else { return "n/a" }
        if p < 1e-4 { return "<0.0001" }
        return value(p, digits: 3)
    }
}
