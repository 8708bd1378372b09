// Figures and tables of fact acquisition (Evaluators/Acquisition.swift): accuracy at [MASK] vs
// training tokens, one color per exposure bucket, solid for the training patterns and dashed
// for the held-out ones; and the accuracy per bucket and split at a run's last checkpoint.

import Evaluators
import Foundation

public enum AcquisitionReport {
    /// The curves of one run as an SVG line plot.
    public static func svg(_ r: AcquisitionResult, title: String) -> String {
        let buckets = Array(Set(r.points.flatMap { $0.groups.map(\.bucket) })).sorted()
        let splits = ["train", "held-out"]
        var series: [LinePlot.Series] = []
        for (i, b) in buckets.enumerated() {
            for (j, s) in splits.enumerated() {
                let pts = r.points.compactMap { p -> (x: Double, y: Double)? in
                    guard let t = p.tokens, let g = p.groups.first(where: { $0.bucket == b && $0.split == s }) else { return nil }
                    return (Double(t) / 1e6, 100 * g.accuracy)
                }
                if !pts.isEmpty { series.append(.init(group: i, style: j, points: pts)) }
            }
        }
        var plot = LinePlot(title: title, xLabel: "training tokens (millions)", yLabel: "accuracy at [MASK] (%)",
                            groups: buckets.map { $0 == 0 ? "never stated (control)" : "stated \($0)x" },
                            styles: ["training patterns", "held-out patterns"], series: series)
        plot.markers = true
        return plot.svg()
    }

    /// Markdown: per run (label, result), the accuracy per bucket and split at its last
    /// checkpoint, with the probes counted.
    public static func table(_ runs: [(label: String, result: AcquisitionResult)]) -> String {
        let buckets = Array(Set(runs.flatMap { $0.result.points.flatMap { $0.groups.map(\.bucket) } })).sorted()
        var md = "| run | checkpoint (tokens) | split | " + buckets.map { $0 == 0 ? "control (0x)" : "\($0)x" }.joined(separator: " | ") + " |\n"
        md += "|---|---|---|" + String(repeating: "---:|", count: buckets.count) + "\n"
        for (label, r) in runs {
            guard let last = r.points.last else { continue }
            let at = last.tokens.map { String(format: "%.1fM", Double($0) / 1e6) } ?? "?"
            for s in ["train", "held-out"] {
                let cells = buckets.map { b in
                    last.groups.first { $0.bucket == b && $0.split == s }.map { String(format: "%.1f%% (%d)", 100 * $0.accuracy, $0.probes) } ?? "–"
                }
                md += "| \(label) | \(last.checkpoint), step \(last.step) (\(at)) | \(s) patterns | " + cells.joined(separator: " | ") + " |\n"
            }
        }
        return md
    }
}
