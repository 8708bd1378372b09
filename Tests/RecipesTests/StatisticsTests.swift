// Statistics against reference values computed with scipy 1.17 (stats.t.ppf, stats.t.sf,
// special.betainc, stats.ttest_rel, stats.ttest_1samp and their confidence_interval(0.95)),
// Holm's correction against a hand-computed example, and the fixed number formatting of reports.

@testable import Recipes
@testable import Viz
import XCTest

final class StatisticsTests: XCTestCase {
    // Tolerances (Float64 scalar code, no BLAS: the same on every CPU). The continued fraction
    // stops at a relative step below 1e-16 and lgamma is good to a few ulps, so exp(lnFront)
    // (|lnFront| < 20 here) carries ~20 u64 = 2e-15 relative: 1e-12 absolute on values <= 1 is
    // 500x that, 1e-18 on 7.9e-8 (1.3e-11 relative) likewise.
    func testIncompleteBeta() {
        XCTAssertEqual(Statistics.incompleteBeta(0.3, 2, 3), 0.34829999999999994, accuracy: 1e-12)
        XCTAssertEqual(Statistics.incompleteBeta(0.9, 0.5, 0.5), 0.7951672353008665, accuracy: 1e-12)
        XCTAssertEqual(Statistics.incompleteBeta(0.05, 5, 0.5), 7.855992178747939e-08, accuracy: 1e-18)
        XCTAssertEqual(Statistics.incompleteBeta(0, 2, 3), 0)
        XCTAssertEqual(Statistics.incompleteBeta(1, 2, 3), 1)
    }

    func testStudentTQuantiles() {
        let reference: [(Double, Double)] = [(1, 12.706204736174694), (2, 4.302652729749462), (3, 3.1824463052837078),
                                             (4, 2.7764451051977934), (5, 2.5705818356363146), (9, 2.262157162798205),
                                             (29, 2.045229642132703)]
        // bisection to Double resolution: the quantile's error is the CDF's (~1e-14) over the
        // density at the quantile (>= 2e-3 at df 1, q = 12.7): <= 5e-12, 200x below 1e-9
        for (df, q) in reference {
            XCTAssertEqual(Statistics.studentTQuantile(0.975, df: df), q, accuracy: 1e-9, "df \(df)")
            XCTAssertEqual(Statistics.studentTQuantile(0.025, df: df), -q, accuracy: 1e-9, "df \(df)")
        }
        // the values quoted in textbooks, to 4 decimals: half a unit of the 4th decimal, 5e-5
        XCTAssertEqual(Statistics.studentTQuantile(0.975, df: 1), 12.7062, accuracy: 5e-5)
        XCTAssertEqual(Statistics.studentTQuantile(0.975, df: 2), 4.3027, accuracy: 5e-5)
        XCTAssertEqual(Statistics.studentTQuantile(0.975, df: 4), 2.7764, accuracy: 5e-5)
    }

    func testTwoSidedPValues() {
        let reference: [(t: Double, df: Double, p: Double)] = [
            (2.0, 3, 0.13932596855884305), (0.5, 1, 0.7048327646991335), (3.7, 8, 0.0060426075049824024),
            (1.2, 2, 0.3530033607793695), (10.0, 4, 0.000562003622715991), (-2.5, 6, 0.0465282322841673),
        ]
        // the incomplete beta's ~2e-15 relative error (testIncompleteBeta): 1e-12 absolute plus
        // 1e-9 relative keeps 500x that for the smallest p (5.6e-4) too
        for r in reference {
            XCTAssertEqual(Statistics.studentTTwoSided(r.t, df: r.df), r.p, accuracy: 1e-12 + 1e-9 * r.p, "t \(r.t) df \(r.df)")
        }
        // t = 0: I_1(a, b) returns exactly 1, and 1 - 1/2 is exact; 1e-15 allows one rounding
        XCTAssertEqual(Statistics.studentTTwoSided(0, df: 3), 1, accuracy: 1e-15)
        XCTAssertEqual(Statistics.studentTCDF(0, df: 7), 0.5, accuracy: 1e-15)
    }

    func testSummaryAndPairedTest() {
        let x = [5.1, 5.3, 4.9, 5.6], y = [5.0, 5.05, 4.95, 5.2]
        // Means and standard deviations of 4 values ~5 carry a few u64 * 5 ~ 1e-15 (1e-12: 1000x);
        // quantities through the t quantile or CDF (half-width, t, p, CI) carry its <= 5e-12 (1e-9).
        let s = Statistics.summarize(x)
        XCTAssertEqual(s.n, 4)
        XCTAssertEqual(s.mean, 5.225, accuracy: 1e-12)
        XCTAssertEqual(s.sd, 0.2986078811194817, accuracy: 1e-12)
        XCTAssertEqual(s.halfWidth, 0.4751517739986456, accuracy: 1e-9)
        let t = Statistics.pairedTTest(x, y)
        XCTAssertEqual(t.t!, 1.8073922282301282, accuracy: 1e-9)
        XCTAssertEqual(t.p!, 0.16842924532014497, accuracy: 1e-9)
        XCTAssertEqual(t.meanDifference, 0.175, accuracy: 1e-12)
        // scipy: stats.ttest_rel(x, y).confidence_interval(0.95)
        XCTAssertEqual(t.low!, -0.13313903851407793, accuracy: 1e-9)
        XCTAssertEqual(t.high!, 0.4831390385140776, accuracy: 1e-9)

        // one seed: no interval, no test; identical differences: no test
        XCTAssertTrue(Statistics.summarize([3]).halfWidth.isNaN)
        XCTAssertNil(Statistics.pairedTTest([1], [2]).p)
        XCTAssertNil(Statistics.pairedTTest([1, 2, 3], [0, 1, 2]).p)
        XCTAssertNil(Statistics.pairedTTest([60.77, 65.38], [61.54, 66.15]).p, "equal differences up to rounding")
        let cancel = Statistics.pairedTTest([51.53846153846154, 55.0], [52.5, 54.03846153846154])
        XCTAssertEqual(cancel.meanDifference, 0, "rounding-level mean differences print as 0")
        XCTAssertEqual(cancel.p!, 1, accuracy: 1e-12)
        XCTAssertEqual(NumberFormat.pValue(Statistics.pairedTTest([1, 2, 3], [0, 1, 2]).p), "n/a")
    }

    /// Units paired within seeds, the per-seed mean differences combined over seeds, against the
    /// closed form: seed A pairs a, b (c and d have no partner): differences 2, 3, mean 2.5; seed
    /// B pairs a, b, c: 0, 3, 1, mean 4/3; seed C: 1, 2, mean 1.5. Over seeds, the one-sample
    /// t-test of [2.5, 4/3, 1.5] (scipy: stats.ttest_1samp(D, 0) and its confidence_interval).
    func testUnitsPairedWithinSeedsThenCombined() {
        let a = (x: ["a": 3.0, "b": 5, "c": 9], y: ["a": 1.0, "b": 2, "d": 7])
        let b = (x: ["a": 4.0, "b": 6, "c": 1], y: ["a": 4.0, "b": 3, "c": 0])
        let c = (x: ["a": 2.0, "b": 2], y: ["a": 1.0, "b": 0])
        // tolerances as in testSummaryAndPairedTest: 1e-12 for means, 1e-9 through the t distribution
        let t = Statistics.unitPaired([a, b, c])
        XCTAssertEqual(t.n, 3)
        XCTAssertEqual(t.units, [2, 3, 2])
        XCTAssertEqual(t.meanDifference, (2.5 + 4.0 / 3 + 1.5) / 3, accuracy: 1e-12)
        XCTAssertEqual(t.meanDifference, 1.7777777777777777, accuracy: 1e-12)
        XCTAssertEqual(t.t!, 4.879954250643349, accuracy: 1e-9)
        XCTAssertEqual(t.p!, 0.03951963969973726, accuracy: 1e-9)
        XCTAssertEqual(t.low!, 0.2103121796248728, accuracy: 1e-9)
        XCTAssertEqual(t.high!, 3.3452433759306826, accuracy: 1e-9)
        // by hand: sd of the seed means, t quantile for 2 degrees of freedom
        let d = [2.5, 4.0 / 3, 1.5], m = d.reduce(0, +) / 3
        let sd = (d.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 2).squareRoot()
        XCTAssertEqual(t.high! - m, 4.302652729749462 * sd / 3.0.squareRoot(), accuracy: 1e-9)

        // one seed: the units of that seed are the pairs (scipy: stats.ttest_rel([3, 5], [1, 2]))
        let one = Statistics.unitPaired([a])
        XCTAssertEqual(one.n, 1); XCTAssertEqual(one.units, [2])
        XCTAssertEqual(one.meanDifference, 2.5, accuracy: 1e-12)
        XCTAssertEqual(one.p!, 0.1256659163780024, accuracy: 1e-9)
        XCTAssertEqual(one.low!, -3.853102368087347, accuracy: 1e-9)
        XCTAssertEqual(one.high!, 8.853102368087347, accuracy: 1e-9)
        // a seed without a common unit is left out; none at all: no test
        XCTAssertEqual(Statistics.unitPaired([a, (x: ["q": 1], y: ["r": 2])]).n, 1)
        XCTAssertEqual(Statistics.unitPaired([(x: ["q": 1], y: ["r": 2])]).n, 0)
        XCTAssertNil(Statistics.unitPaired([(x: ["q": 1], y: ["r": 2])]).p)
    }

    /// Holm by hand: p = 0.01, 0.04, 0.03, 0.005 (m = 4). Sorted: 0.005 x 4 = 0.02; 0.01 x 3 =
    /// 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04, raised to 0.06 (step-down: never below an earlier
    /// one). Untested rows stay nil and do not count in m; adjusted values are capped at 1.
    func testHolm() {
        // each adjusted p is one product p * k (k <= 4) or a max/min of them: one rounding, <= 1 ulp
        // of 0.06 = 7e-18 from the Double literal; 1e-15 is 100x that
        let adjusted = Statistics.holm([0.01, 0.04, 0.03, 0.005])
        for (a, e) in zip(adjusted, [0.03, 0.06, 0.06, 0.02]) { XCTAssertEqual(a!, e, accuracy: 1e-15) }
        let withGaps = Statistics.holm([nil, 0.01, nil, 0.04, 0.03, 0.005])
        XCTAssertNil(withGaps[0]); XCTAssertNil(withGaps[2])
        for (a, e) in zip(withGaps.compactMap { $0 }, [0.03, 0.06, 0.06, 0.02]) { XCTAssertEqual(a, e, accuracy: 1e-15) }
        let capped = Statistics.holm([0.4, 0.5, 0.9])
        for (a, e) in zip(capped, [1.0, 1.0, 1.0]) { XCTAssertEqual(a!, e, accuracy: 1e-15) }   // 1.2, 1.0, 0.9 -> max/min
        XCTAssertEqual(Statistics.holm([0.02])[0]!, 0.02, accuracy: 1e-15)
        XCTAssertEqual(Statistics.holm([]).count, 0)
    }

    func testNumberFormatting() {
        XCTAssertEqual(NumberFormat.value(5.123456), "5.123")
        XCTAssertEqual(NumberFormat.value(0.012345), "0.01235")
        XCTAssertEqual(NumberFormat.value(123.456), "123.5")
        XCTAssertEqual(NumberFormat.value(45123.4), "45123")
        XCTAssertEqual(NumberFormat.value(-0.00001), "-1.000e-05")
        XCTAssertEqual(NumberFormat.value(0), "0")
        XCTAssertEqual(NumberFormat.value(-0.00004999, digits: 4), "-4.999e-05")
        XCTAssertEqual(NumberFormat.value(.nan), "n/a")
        XCTAssertEqual(NumberFormat.signed(0.25), "+0.2500")
        XCTAssertEqual(NumberFormat.signed(-0.25), "-0.2500")
        XCTAssertEqual(NumberFormat.pValue(0.031234), "0.0312")
        XCTAssertEqual(NumberFormat.pValue(0.00001), "<0.0001")
        XCTAssertEqual(NumberFormat.pValue(nil), "n/a")
        XCTAssertEqual(NumberFormat.value(-1e-20 * 0), "0")
    }

    func testPlotTicks() {
        XCTAssertEqual(LinePlot.ticks(0, 150_000), [0, 50_000, 100_000, 150_000])
        XCTAssertEqual(LinePlot.ticks(4.9, 8.4), [4, 5, 6, 7, 8, 9])
        XCTAssertEqual(LinePlot.tickLabel(1_250_000, step: 250_000, si: true), "1.25M")
        XCTAssertEqual(LinePlot.tickLabel(50_000, step: 50_000, si: true), "50K")
        XCTAssertEqual(LinePlot.tickLabel(0, step: 50_000, si: true), "0")
        XCTAssertEqual(LinePlot.tickLabel(6.5, step: 0.5, si: false), "6.5")
    }

    /// A variant's seeds in a figure: their mean where they all have a point, the band their
    /// range; one seed as it is; seeds without a shared x one line each.
    func testSeriesOverSeeds() {
        let two = LinePlot.seriesOverSeeds([[(0, 1), (1, 2), (2, 3)], [(0, 3), (1, 4)]], group: 1)
        XCTAssertEqual(two.count, 1)
        XCTAssertEqual(two[0].group, 1)
        XCTAssertEqual(two[0].points.map(\.x), [0, 1]); XCTAssertEqual(two[0].points.map(\.y), [2, 3])
        XCTAssertEqual(two[0].band.map(\.lo), [1, 2]); XCTAssertEqual(two[0].band.map(\.hi), [3, 4])
        let one = LinePlot.seriesOverSeeds([[(0, 1), (1, .nan)]], group: 0)
        XCTAssertEqual(one.count, 1); XCTAssertEqual(one[0].points.map(\.y), [1]); XCTAssertTrue(one[0].band.isEmpty)
        let apart = LinePlot.seriesOverSeeds([[(0, 1)], [(1, 2)]], group: 0)
        XCTAssertEqual(apart.map(\.style), [0, 1]); XCTAssertTrue(apart.allSatisfy { $0.band.isEmpty })
        // the band is drawn under its line, in the group's color
        let svg = LinePlot(title: "t", xLabel: "x", yLabel: "y", groups: ["a", "b"], styles: [], series: two).svg()
        XCTAssertTrue(svg.contains("<polygon fill=\"\(LinePlot.color(1))\""), svg)
        XCTAssertLessThan(svg.range(of: "<polygon")!.lowerBound, svg.range(of: "<polyline stroke=")!.lowerBound)
    }
}
