// The report's second stage, analyse: every variant against the baseline on every row of the
// collected tables (paired by seed, or by unit within seeds), with Holm's correction over a
// family; pure functions of the tables, unit-tested (StudyReportTests).

import Evaluators
import Foundation

extension Report {
    /// A variant against the baseline on one row.
    struct Comparison {
        var test: Statistics.PairedTest
        var unitKind: String?          // paired by unit within seeds; nil: by seed
        var holm: Double? = nil
    }

    /// Seeds both variants have; by unit within those seeds when every one of them has units
    /// of one kind on both sides, else by seed.
    static func compare(_ t: Table, _ id: String, _ variant: String, _ base: String, seeds: [UInt64]) -> Comparison? {
        guard var c = pairedComparison(t, id, variant, base, seeds: seeds) else { return nil }
        // a difference of two values in [a, b] lies in [a - b, b - a]: the interval is cut there
        if let b = t.first[id]!.bounds {
            let range = (b.lowerBound - b.upperBound)...(b.upperBound - b.lowerBound)
            c.test.low = c.test.low.map { range.clamp($0) }; c.test.high = c.test.high.map { range.clamp($0) }
        }
        return c
    }

    static func pairedComparison(_ t: Table, _ id: String, _ variant: String, _ base: String, seeds: [UInt64]) -> Comparison? {
        guard !t.first[id]!.descriptive else { return nil }
        let pairs = seeds.compactMap { s in t.values[id]?[variant]?[s].flatMap { x in t.values[id]?[base]?[s].map { (x, $0) } } }
        guard !pairs.isEmpty else { return nil }
        let kinds = Set(pairs.flatMap { [$0.0.units?.kind, $0.1.units?.kind] })
        if kinds.count == 1, let kind = kinds.first! {
            let test = Statistics.unitPaired(pairs.map { ($0.0.units!.values, $0.1.units!.values) })
            if test.n == pairs.count { return Comparison(test: test, unitKind: kind) }
        }
        return Comparison(test: Statistics.pairedTTest(pairs.map(\.0.value), pairs.map(\.1.value)), unitKind: nil)
    }

    /// A table's comparisons: row id -> variant -> its comparison with the baseline.
    typealias Comparisons = [ObjectIdentifier: [String: [String: Comparison]]]

    /// Every variant against the baseline on every row, Holm-adjusted over a family: every
    /// comparison of the main tables (what the headline findings draw from), and apart from it
    /// every comparison of the appendix.
    static func analyse(_ recipe: Recipe, _ collected: Collected) -> Comparisons {
        let others = recipe.variants.filter { $0.id != recipe.baseline }
        var comparisons: Comparisons = [:]
        for family in [collected.main, collected.appendix] {
            var cs: [(table: Table, id: String, variant: String, c: Comparison)] = []
            for t in family {
                for id in t.order { for v in others { if let c = compare(t, id, v.id, recipe.baseline, seeds: recipe.seeds) { cs.append((t, id, v.id, c)) } } }
            }
            let adjusted = Statistics.holm(cs.map(\.c.test.p))
            for (k, x) in cs.enumerated() {
                var c = x.c
                c.holm = adjusted[k]
                comparisons[ObjectIdentifier(x.table), default: [:]][x.id, default: [:]][x.variant] = c
            }
        }
        return comparisons
    }

    /// The cell-by-cell mean of seeds' heatmap grids of one layout, over the seeds with any value
    /// (a seed with no probe has nothing to add), and how many those are; nil when none has.
    static func meanGrid(_ grids: [[[Double?]]]) -> (values: [[Double?]], seeds: Int)? {
        let drawn = grids.filter { $0.contains { $0.contains { $0 != nil } } }
        guard let g0 = drawn.first else { return nil }
        let values = g0.indices.map { r in
            g0[r].indices.map { c -> Double? in
                let xs = drawn.compactMap { $0[r][c] }
                return xs.isEmpty ? nil : Statistics.mean(xs)
            }
        }
        return (values, drawn.count)
    }
}
