// `[evaluators.acquisition]` / `droplab eval acquisition RUN`: fact acquisition curves of a
// pretraining on `corpus facts` (Evaluators/Acquisition.swift), from every checkpoint the run
// saved (step-*.h5 and last.h5 beside the evaluated checkpoint; on the command line the run
// directory or a checkpoint in it). With [facts] the probes are the recipe's corpus's.
// Rows: accuracy at [MASK] per exposure bucket and pattern split at the run's last checkpoint;
// figures: one curve per variant and seed for each bucket and split, against training tokens.

import Checkpoint
import Evaluators
import Foundation
import Viz

public enum AcquisitionRecipeEvaluator: RecipeEvaluator {
    public static let name = "acquisition"
    public static let abstract = "Fact acquisition curves of a pretraining run on `corpus facts`: accuracy at [MASK] per exposure bucket and pattern split at every checkpoint the run saved."
    public static let title = "Fact acquisition (eval acquisition)"
    public static var defaults: AcquisitionOptions { AcquisitionOptions() }
    public static let part = ReportPart.knowledge
    public static let managedKeys = ["seed": "the recipe's seeds"]

    public static func resolve(_ o: inout AcquisitionOptions, explicit: Set<String>, context c: ResolveContext) {
        o.seed = c.seed
        if let g = c.generated, !explicit.contains("probes") { o.probes = g.probes }
    }

    public static func datasets(_ o: AcquisitionOptions) -> [DatasetRef] { [DatasetRef(key: "probes", path: o.probes)] }

    /// The run directory: `checkpoint` itself when it is one, else the directory holding it.
    static func runDirectory(_ checkpoint: String) -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: checkpoint, isDirectory: &isDir), isDir.boolValue { return checkpoint }
        return (checkpoint as NSString).deletingLastPathComponent.isEmpty ? "." : (checkpoint as NSString).deletingLastPathComponent
    }

    public static func run(checkpoint: String, options: AcquisitionOptions, context: JobContext) throws -> AcquisitionResult {
        let r = try Acquisition.run(runDir: runDirectory(checkpoint), options: options, log: context.log)
        try AtomicFile.write(Data(AcquisitionReport.svg(r, title: "Fact acquisition").utf8), to: context.directory + "/acquisition.svg")
        return r
    }

    static func label(_ bucket: Int, _ split: String) -> String {
        (bucket == 0 ? "never stated (control)" : "stated \(bucket)x") + ", \(split) patterns"
    }

    public static func rows(_ r: AcquisitionResult) -> [MetricRow] {
        guard let last = r.points.last else { return [] }
        return last.groups.map { g in
            MetricRow.percent("acquisition.\(g.split).\(g.bucket)", "Accuracy at [MASK] at the end, \(label(g.bucket, g.split)) (%)", g.accuracy, better: .higher)
        }
    }

    public static func figures(_ r: AcquisitionResult) -> [Figure] {
        guard let last = r.points.last else { return [] }
        return last.groups.map { g in
            let points = r.points.compactMap { p -> (x: Double, y: Double)? in
                guard let t = p.tokens, let a = p.groups.first(where: { $0.bucket == g.bucket && $0.split == g.split }) else { return nil }
                return (Double(t) / 1e6, 100 * a.accuracy)
            }
            return Figure(id: "acquisition-\(g.split)-\(g.bucket)", title: "Fact acquisition: \(label(g.bucket, g.split))",
                          xLabel: "training tokens (millions)", yLabel: "accuracy at [MASK] (%)", markers: true, kind: .curve(points))
        }
    }
}
