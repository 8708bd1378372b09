// Hand-written SVG line plots: axes with "nice" ticks, a legend, one polyline per series,
// a color per group (variant) and a dash pattern per style (seed), a series' band (its
// seeds' range) shaded in its color. Output is a pure function of the data (fixed number
// formatting), so regenerated plots are byte-identical.

import Evaluators
import Foundation

public struct LinePlot {
    public struct Series {
        public var group: Int          // color
        public var style: Int          // dash pattern
        public var points: [(x: Double, y: Double)]
        /// Shaded from lo to hi at each x (empty: no band).
        public var band: [(x: Double, lo: Double, hi: Double)] = []
        public init(group: Int, style: Int, points: [(x: Double, y: Double)]) {
            self.group = group; self.style = style; self.points = points
        }
    }

    /// One group's curves (one per seed) as series: one curve as it is; two or more as their
    /// mean at the x values they all have, with a band from their minimum to their maximum
    /// (the seeds' range: with 2-3 seeds a t-interval would be wider than the data); curves
    /// that share no x value stay one series each, a dash pattern per curve.
    public static func seriesOverSeeds(_ curves: [[(x: Double, y: Double)]], group: Int) -> [Series] {
        let finite = curves.map { $0.filter { $0.x.isFinite && $0.y.isFinite } }.filter { !$0.isEmpty }
        guard finite.count > 1 else { return finite.map { Series(group: group, style: 0, points: $0) } }
        let shared = finite.dropFirst().reduce(Set(finite[0].map(\.x))) { $0.intersection($1.map(\.x)) }
        guard !shared.isEmpty else { return finite.enumerated().map { Series(group: group, style: $0.offset, points: $0.element) } }
        var mean = Series(group: group, style: 0, points: [])
        for x in finite[0].map(\.x) where shared.contains(x) && !mean.points.contains(where: { $0.x == x }) {
            let ys = finite.map { c in c.first { $0.x == x }!.y }
            mean.points.append((x, Evaluators.mean(ys)))
            mean.band.append((x, ys.min()!, ys.max()!))
        }
        return [mean]
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var groups: [String]        // legend: one entry per color
    public var styles: [String]        // legend: one entry per dash pattern
    public var series: [Series]
    public var markers = false         // draw a dot at every point
    public var notes: [String] = []    // legend lines under the entries (what a line and a band are)

    public init(title: String, xLabel: String, yLabel: String, groups: [String], styles: [String], series: [Series]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
        self.groups = groups; self.styles = styles; self.series = series
    }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    static let dashes = ["", "7 4", "2 3", "10 3 2 3", "4 4", "1 5"]
    static func color(_ i: Int) -> String { colors[i % colors.count] }
    static func dash(_ i: Int) -> String { dashes[i % dashes.count] }

    // layout
    let width = 760.0, height = 460.0
    let left = 78.0, right = 560.0, top = 44.0, bottom = 392.0

    public func svg() -> String {
        let pts = (series.flatMap(\.points) + series.flatMap(\.band).flatMap { [($0.x, $0.lo), ($0.x, $0.hi)] })
            .filter { $0.x.isFinite && $0.y.isFinite }
        let (x0, x1) = LinePlot.range(pts.map(\.x), includeZero: true)
        let (y0, y1) = LinePlot.range(pts.map(\.y), includeZero: false)
        let xt = LinePlot.ticks(x0, x1), yt = LinePlot.ticks(y0, y1)
        let xLo = min(x0, xt.first ?? x0), xHi = max(x1, xt.last ?? x1)
        let yLo = min(y0, yt.first ?? y0), yHi = max(y1, yt.last ?? y1)
        func px(_ x: Double) -> Double { left + (x - xLo) / (xHi - xLo) * (right - left) }
        func py(_ y: Double) -> Double { bottom - (y - yLo) / (yHi - yLo) * (bottom - top) }

        var s = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(f(width))" height="\(f(height))" viewBox="0 0 \(f(width)) \(f(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect x="0" y="0" width="\(f(width))" height="\(f(height))" fill="#ffffff"/>
        <text x="\(f((left + right) / 2))" y="24" text-anchor="middle" font-size="15">\(esc(title))</text>

        """
        // grid and ticks
        s += "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n"
        for t in xt { s += "<line x1=\"\(f(px(t)))\" y1=\"\(f(top))\" x2=\"\(f(px(t)))\" y2=\"\(f(bottom))\"/>\n" }
        for t in yt { s += "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(right))\" y2=\"\(f(py(t)))\"/>\n" }
        s += "</g>\n"
        s += "<g stroke=\"#333333\" stroke-width=\"1\" fill=\"none\">\n"
        s += "<polyline points=\"\(f(left)),\(f(top)) \(f(left)),\(f(bottom)) \(f(right)),\(f(bottom))\"/>\n"
        for t in xt { s += "<line x1=\"\(f(px(t)))\" y1=\"\(f(bottom))\" x2=\"\(f(px(t)))\" y2=\"\(f(bottom + 5))\"/>\n" }
        for t in yt { s += "<line x1=\"\(f(left - 5))\" y1=\"\(f(py(t)))\" x2=\"\(f(left))\" y2=\"\(f(py(t)))\"/>\n" }
        s += "</g>\n<g fill=\"#333333\">\n"
        let xStep = xt.count > 1 ? xt[1] - xt[0] : 1, yStep = yt.count > 1 ? yt[1] - yt[0] : 1
        for t in xt {
            s += "<text x=\"\(f(px(t)))\" y=\"\(f(bottom + 19))\" text-anchor=\"middle\">\(esc(LinePlot.tickLabel(t, step: xStep, si: true)))</text>\n"
        }
        for t in yt {
            s += "<text x=\"\(f(left - 9))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(esc(LinePlot.tickLabel(t, step: yStep, si: false)))</text>\n"
        }
        s += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(bottom + 44))\" text-anchor=\"middle\">\(esc(xLabel))</text>\n"
        s += "<text x=\"18\" y=\"\(f((top + bottom) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(f((top + bottom) / 2)))\">\(esc(yLabel))</text>\n"
        s += "</g>\n"
        // bands under the lines
        let bands = series.filter { !$0.band.isEmpty }
        if !bands.isEmpty {
            s += "<g stroke=\"none\" fill-opacity=\"0.18\">\n"
            for se in bands {
                let outline = se.band.map { (px($0.x), py($0.hi)) } + se.band.reversed().map { (px($0.x), py($0.lo)) }
                s += "<polygon fill=\"\(LinePlot.color(se.group))\" points=\"" + outline.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ") + "\"/>\n"
            }
            s += "</g>\n"
        }
        // series
        s += "<g fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\">\n"
        for se in series {
            let p = se.points.filter { $0.x.isFinite && $0.y.isFinite }
            guard !p.isEmpty else { continue }
            let d = LinePlot.dash(se.style)
            s += "<polyline stroke=\"\(LinePlot.color(se.group))\"\(d.isEmpty ? "" : " stroke-dasharray=\"\(d)\"") points=\""
                + p.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ") + "\"/>\n"
        }
        s += "</g>\n"
        if markers {
            s += "<g stroke=\"none\">\n"
            for se in series {
                for q in se.points where q.x.isFinite && q.y.isFinite {
                    s += "<circle cx=\"\(f(px(q.x)))\" cy=\"\(f(py(q.y)))\" r=\"2.5\" fill=\"\(LinePlot.color(se.group))\"/>\n"
                }
            }
            s += "</g>\n"
        }
        // legend
        var y = top + 6
        s += "<g>\n"
        for (i, g) in groups.enumerated() {
            s += "<line x1=\"\(f(right + 22))\" y1=\"\(f(y))\" x2=\"\(f(right + 52))\" y2=\"\(f(y))\" stroke=\"\(LinePlot.color(i))\" stroke-width=\"3\"/>\n"
            s += "<text x=\"\(f(right + 60))\" y=\"\(f(y + 4))\" fill=\"#333333\">\(esc(g))</text>\n"
            y += 20
        }
        y += 8
        for (i, st) in styles.enumerated() {
            let d = LinePlot.dash(i)
            s += "<line x1=\"\(f(right + 22))\" y1=\"\(f(y))\" x2=\"\(f(right + 52))\" y2=\"\(f(y))\" stroke=\"#555555\" stroke-width=\"2\"\(d.isEmpty ? "" : " stroke-dasharray=\"\(d)\"")/>\n"
            s += "<text x=\"\(f(right + 60))\" y=\"\(f(y + 4))\" fill=\"#333333\">\(esc(st))</text>\n"
            y += 20
        }
        for n in notes {
            s += "<text x=\"\(f(right + 22))\" y=\"\(f(y + 4))\" fill=\"#555555\" font-size=\"11\">\(esc(n))</text>\n"
            y += 16
        }
        s += "</g>\n</svg>\n"
        return s
    }

    func f(_ v: Double) -> String {
        let s = String(format: "%.1f", v)
        return s == "-0.0" ? "0.0" : s
    }

    func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Data range, padded; never empty.
    static func range(_ v: [Double], includeZero: Bool) -> (Double, Double) {
        guard var lo = v.min(), var hi = v.max() else { return (0, 1) }
        if includeZero { lo = min(lo, 0) }
        if hi - lo < 1e-12 { let pad = max(abs(hi) * 0.05, 0.5); return (lo - pad, hi + pad) }
        if !includeZero { let pad = (hi - lo) * 0.05; lo -= pad; hi += pad }
        return (lo, hi)
    }

    /// About 5 ticks at 1, 2 or 5 times a power of ten, covering [lo, hi].
    static func ticks(_ lo: Double, _ hi: Double, target: Int = 5) -> [Double] {
        let raw = (hi - lo) / Double(target)
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        let first = floor(lo / step + 1e-9) * step, last = ceil(hi / step - 1e-9) * step
        let n = Int(((last - first) / step).rounded())
        return (0...max(n, 1)).map { k in
            let t = first + Double(k) * step
            return abs(t) < step * 1e-9 ? 0 : t
        }
    }

    /// Tick text: "250K", "1.25M" for token counts; as many decimals as the step needs otherwise.
    static func tickLabel(_ v: Double, step: Double, si: Bool) -> String {
        var div = 1.0, suffix = ""
        if si {
            for (d, sfx) in [(1e9, "G"), (1e6, "M"), (1e3, "K")] where abs(v) >= d { div = d; suffix = sfx; break }
        }
        let scaled = step / div
        var decimals = 0
        while decimals < 6 {
            let m = scaled * pow(10, Double(decimals))
            if abs(m - m.rounded()) < 1e-6 * max(1, abs(m)) { break }
            decimals += 1
        }
        let s = String(format: "%.\(decimals)f", v / div)
        return (s.hasPrefix("-") && Double(s) == 0 ? String(s.dropFirst()) : s) + suffix
    }
}
