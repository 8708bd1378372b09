// The figure of one run's fact acquisition (Evaluators/Acquisition.swift): accuracy at [MASK] vs
// training tokens, one color per exposure bucket, solid for the training patterns and dashed
// for the held-out ones.

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
}
