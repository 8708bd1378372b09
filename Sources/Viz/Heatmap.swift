// A labelled SVG heatmap with colour-blind-safe scales (sequential: viridis stops; diverging,
// for differences: PuOr stops around 0), the exact value in each cell's tooltip, optional text
// in the cells and axis titles. Missing cells are grey.

import Foundation

public enum Heatmap {
    public enum Scale: Sendable {
        case sequential, diverging

        var stops: [(Double, Double, Double)] {
            switch self {
            case .sequential: return [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
            case .diverging: return [(84, 39, 136), (153, 142, 195), (247, 247, 247), (241, 163, 64), (179, 88, 6)]
            }
        }
    }

    public struct Style: Sendable {
        /// Values mapped to the ends of the scale (default: the finite values' min...max;
        /// diverging: -m...m with m their largest magnitude).
        public var range: ClosedRange<Double>? = nil
        public var scale = Scale.sequential
        public var cellText: [[String]]? = nil      // [row][column], drawn in the cells
        public var tooltips: [[String]]? = nil      // [row][column], after the value
        public var xLabel: String? = nil
        public var yLabel: String? = nil
        public var cellWidth = 56, cellHeight = 26, left = 130
        public var slantedColumnLabels = false      // for long labels in narrow columns (tokens)
        public init() {}
    }

    /// Colour of x in 0...1 on the scale.
    static func colour(_ x: Double, _ scale: Scale = .sequential) -> String {
        let (r, g, b) = rgb(x, scale)
        return String(format: "rgb(%d,%d,%d)", Int(r), Int(g), Int(b))
    }

    static func rgb(_ x: Double, _ scale: Scale) -> (Double, Double, Double) {
        let stops = scale.stops
        let t = min(max(x, 0), 1) * Double(stops.count - 1)
        let i = min(Int(t), stops.count - 2), f = t - Double(i)
        let (a, b) = (stops[i], stops[i + 1])
        return (a.0 + f * (b.0 - a.0), a.1 + f * (b.1 - a.1), a.2 + f * (b.2 - a.2))
    }

    /// Black or white, whichever reads better on the colour of x.
    static func ink(_ x: Double, _ scale: Scale) -> String {
        let (r, g, b) = rgb(x, scale)
        return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "#000" : "#fff"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// values[row][column].
    public static func svg(title: String, rowLabels: [String], columnLabels: [String], values: [[Double?]], style: Style = Style()) -> String {
        let cell = style.cellWidth, cellH = style.cellHeight, left = style.left, top = 40
        let all = values.flatMap { $0 }.compactMap { $0 }.filter(\.isFinite)
        let m = all.map(abs).max() ?? 1
        let range = style.range ?? (style.scale == .diverging ? -max(m, 1e-12)...max(m, 1e-12) : (all.min() ?? 0)...(all.max() ?? 1))
        let lo = range.lowerBound, hi = range.upperBound, span = hi > lo ? hi - lo : 1
        let bottom = top + cellH * rowLabels.count, labels = style.slantedColumnLabels ? 60 : 24
        let width = left + cell * columnLabels.count + 150
        let height = max(bottom + labels + (style.xLabel == nil ? 16 : 34), top + 136)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<title>\(escape(title))</title>\n<text x=\"10\" y=\"20\" font-size=\"14\">\(escape(title))</text>\n"
        for (r, label) in rowLabels.enumerated() {
            s += "<text x=\"\(left - 6)\" y=\"\(top + r * cellH + cellH / 2 + 4)\" text-anchor=\"end\">\(escape(label))</text>\n"
            for c in columnLabels.indices {
                let v = values[r][c]
                let x = v.map { ($0 - lo) / span }
                let fill = x.map { colour($0, style.scale) } ?? "#ccc"
                var tip = v.map { String(format: "%@, %@: %.6g", label, columnLabels[c], $0) } ?? "\(label), \(columnLabels[c]): n/a"
                if let t = style.tooltips?[r][c], !t.isEmpty { tip += "\n" + t }
                s += "<rect x=\"\(left + c * cell)\" y=\"\(top + r * cellH)\" width=\"\(cell - 1)\" height=\"\(cellH - 1)\" fill=\"\(fill)\"><title>\(escape(tip))</title></rect>\n"
                if let text = style.cellText?[r][c], !text.isEmpty {
                    s += "<text x=\"\(left + c * cell + cell / 2)\" y=\"\(top + r * cellH + cellH / 2 + 4)\" text-anchor=\"middle\" fill=\"\(x.map { ink($0, style.scale) } ?? "#000")\" pointer-events=\"none\">\(escape(text))</text>\n"
                }
            }
        }
        for (c, label) in columnLabels.enumerated() {
            let x = left + c * cell + cell / 2
            s += style.slantedColumnLabels
                ? "<text x=\"\(x)\" y=\"\(bottom + 12)\" text-anchor=\"end\" transform=\"rotate(-40 \(x) \(bottom + 12))\">\(escape(label))</text>\n"
                : "<text x=\"\(x)\" y=\"\(bottom + 16)\" text-anchor=\"middle\">\(escape(label))</text>\n"
        }
        if let x = style.xLabel {
            s += "<text x=\"\(left + cell * columnLabels.count / 2)\" y=\"\(bottom + labels + 14)\" text-anchor=\"middle\" font-style=\"italic\">\(escape(x))</text>\n"
        }
        if let y = style.yLabel {
            s += "<text x=\"12\" y=\"\(top + cellH * rowLabels.count / 2)\" text-anchor=\"middle\" font-style=\"italic\" transform=\"rotate(-90 12 \(top + cellH * rowLabels.count / 2))\">\(escape(y))</text>\n"
        }
        let lx = left + cell * columnLabels.count + 20
        for i in 0..<10 {
            s += "<rect x=\"\(lx)\" y=\"\(top + (9 - i) * 12)\" width=\"14\" height=\"12\" fill=\"\(colour(Double(i) / 9, style.scale))\"/>\n"
        }
        s += String(format: "<text x=\"%d\" y=\"%d\">%.3g</text>\n<text x=\"%d\" y=\"%d\">%.3g</text>\n", lx + 20, top + 10, hi, lx + 20, top + 120, lo)
        return s + "</svg>\n"
    }
}
