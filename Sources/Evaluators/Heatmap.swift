// A labelled SVG heatmap (a colour-blind-safe sequential scale, viridis stops), with the exact
// value in each cell's tooltip. Missing cells are grey.

import Foundation

public enum Heatmap {
    static let stops: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]

    static func colour(_ x: Double) -> String {
        let t = min(max(x, 0), 1) * Double(stops.count - 1)
        let i = min(Int(t), stops.count - 2), f = t - Double(i)
        let (a, b) = (stops[i], stops[i + 1])
        return String(format: "rgb(%d,%d,%d)", Int(a.0 + f * (b.0 - a.0)), Int(a.1 + f * (b.1 - a.1)), Int(a.2 + f * (b.2 - a.2)))
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// values[row][column]; the colour scale spans the finite values' min...max.
    public static func svg(title: String, rowLabels: [String], columnLabels: [String], values: [[Double?]]) -> String {
        let cell = 56, cellH = 26, left = 130, top = 40
        let all = values.flatMap { $0 }.compactMap { $0 }
        let lo = all.min() ?? 0, hi = all.max() ?? 1, span = hi > lo ? hi - lo : 1
        let width = left + cell * columnLabels.count + 150, height = top + cellH * rowLabels.count + 40
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<title>\(escape(title))</title>\n<text x=\"10\" y=\"20\" font-size=\"14\">\(escape(title))</text>\n"
        for (r, label) in rowLabels.enumerated() {
            s += "<text x=\"\(left - 6)\" y=\"\(top + r * cellH + cellH / 2 + 4)\" text-anchor=\"end\">\(escape(label))</text>\n"
            for c in columnLabels.indices {
                let v = values[r][c]
                let fill = v.map { colour(($0 - lo) / span) } ?? "#ccc"
                let tip = v.map { String(format: "%@, %@: %.6g", label, columnLabels[c], $0) } ?? "\(label), \(columnLabels[c]): n/a"
                s += "<rect x=\"\(left + c * cell)\" y=\"\(top + r * cellH)\" width=\"\(cell - 1)\" height=\"\(cellH - 1)\" fill=\"\(fill)\"><title>\(escape(tip))</title></rect>\n"
            }
        }
        for (c, label) in columnLabels.enumerated() {
            s += "<text x=\"\(left + c * cell + cell / 2)\" y=\"\(top + rowLabels.count * cellH + 16)\" text-anchor=\"middle\">\(escape(label))</text>\n"
        }
        let lx = left + cell * columnLabels.count + 20
        for i in 0..<10 {
            s += "<rect x=\"\(lx)\" y=\"\(top + (9 - i) * 12)\" width=\"14\" height=\"12\" fill=\"\(colour(Double(i) / 9))\"/>\n"
        }
        s += String(format: "<text x=\"%d\" y=\"%d\">%.3g</text>\n<text x=\"%d\" y=\"%d\">%.3g</text>\n", lx + 20, top + 10, hi, lx + 20, top + 120, lo)
        return s + "</svg>\n"
    }
}
