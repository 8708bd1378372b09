// The figures of one causal trace (Evaluators/CausalTrace.swift).

import Evaluators
import Foundation

extension CausalTrace {
    /// One SVG heatmap per kind: position classes (rows) x layers (columns), mean indirect effect.
    public static func heatmaps(_ r: TraceResult) -> [(kind: String, svg: String)] {
        r.kinds.map { k in
            let g = k.grid
            return (k.kind, Heatmap.svg(title: "Causal trace: \(k.kind), mean indirect effect on P(target) (\(r.traced) probes)",
                                        rowLabels: g.rows, columnLabels: g.columns, values: g.values))
        }
    }
}
