// The MEMIT scaling curve: CounterFact score (and efficacy, neighbourhood) against the number
// of edits, MEMIT (all at once) and ROME (one after another).

import Evaluators
import Foundation

public enum MemitPlot {
    public static func svg(_ r: MemitResult) -> String {
        var series: [LinePlot.Series] = []
        let metrics: [(String, (CounterFactMetrics) -> Double)] = [("score", \.score), ("efficacy", \.efficacy), ("neighbourhood", \.neighbourhood)]
        for (style, (_, value)) in metrics.enumerated() {
            series.append(.init(group: 0, style: style, points: r.points.map { (log10(Double($0.edits)), value($0.memit)) }))
            let rome = r.points.compactMap { p in p.rome.map { (log10(Double(p.edits)), value($0)) } }
            if !rome.isEmpty { series.append(.init(group: 1, style: style, points: rome)) }
        }
        var plot = LinePlot(title: "CounterFact edits: MEMIT (at once) vs ROME (sequential)", xLabel: "log10(number of edits)",
                            yLabel: "rate", groups: ["MEMIT", "ROME, sequential"], styles: metrics.map(\.0), series: series)
        plot.markers = true
        return plot.svg()
    }
}
