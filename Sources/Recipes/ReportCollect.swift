// The report's first stage, collect: the finished jobs' directories -> typed runs (their rows,
// figures and validity checks), the runs that did not learn their facts, and the rows in tables
// (one per evaluator, and one of its appendix rows), in the order the report shows them.

import Evaluators
import Text
import Training
import Foundation

/// What a finished pretraining contributes: rows and curves from its metrics.jsonl.
enum PretrainMetrics {
    static let title = "Pretraining"

    static func report(_ lines: [[String: Double]]) -> JobReport {
        var rows: [MetricRow] = []
        if let last = lines.last(where: { $0["val_loss"] != nil }), let loss = last["val_loss"] {
            rows.append(MetricRow("pretrain.val_loss", "Pretraining: final validation MLM loss", loss, better: .lower))
            rows.append(MetricRow("pretrain.val_perplexity", "Pretraining: final validation perplexity", exp(loss), better: .lower))
            if let acc = last["val_accuracy"] {
                rows.append(MetricRow.percent("pretrain.val_accuracy", "Pretraining: final validation accuracy (%)", acc, better: .higher))
            }
        }
        // leaving the MLM plateau: the first validation below 6.0 nats (the unigram entropy of
        // an 8192-piece vocabulary on Wikipedia is 6.97; small BERTs sit near 6.5 for millions
        // of tokens); shown, not tested (a run that never leaves it has no value)
        if let left = lines.first(where: { ($0["val_loss"] ?? .infinity) < 6 }), let t = left["tokens"] {
            rows.append(MetricRow("pretrain.plateau_tokens", "Tokens until validation loss < 6.0 (M)", t / 1e6, better: .lower, descriptive: true))
        }
        // tokens / time over the logged windows (evaluation time is not in the windows)
        var tokens = 0.0, seconds = 0.0, previous = 0.0
        for l in lines {
            guard let t = l["tokens"], let tps = l["tokens_per_s"], tps > 0 else { continue }
            let delta = t - previous
            previous = t
            if delta > 0 { tokens += delta; seconds += delta / tps }
        }
        if seconds > 0 { rows.append(MetricRow("pretrain.tokens_per_s", "Training tokens/s", tokens / seconds, better: .higher, descriptive: true)) }
        func curve(_ key: String) -> [(x: Double, y: Double)] {
            lines.compactMap { l in l["tokens"].flatMap { t in l[key].map { (t, $0) } } }
        }
        return JobReport(rows: rows, figures: [
            Figure(id: "val-loss", title: "Validation MLM loss", xLabel: "training tokens", yLabel: "validation MLM loss",
                   markers: true, kind: .curve(curve("val_loss"))),
            Figure(id: "train-loss", title: "Training loss", xLabel: "training tokens",
                   yLabel: "training MLM loss (mean over the log window)", kind: .curve(curve("train_loss"))),
        ])
    }
}

extension Report {
    struct Run {
        var job: Job
        var done: DoneRecord
        var report: JobReport
    }

    /// One table: an evaluator's rows (or its appendix rows); values[row][variant][seed].
    final class Table {
        let title: String, part: ReportPart, appendix: Bool
        var gated = false                                        // its runs that did not learn are left out
        var order: [String] = []
        var first: [String: MetricRow] = [:]                     // label, direction, descriptive
        var values: [String: [String: [UInt64: MetricRow]]] = [:]
        var withheld: [String: [String: [UInt64: String]]] = [:]  // a failed validity check's words, in place of the value
        init(title: String, part: ReportPart, appendix: Bool) { self.title = title; self.part = part; self.appendix = appendix }

        func add(_ row: MetricRow, variant: String, seed: UInt64, failure: String? = nil) {
            if first[row.id] == nil { order.append(row.id); first[row.id] = row }
            if let failure {
                withheld[row.id, default: [:]][variant, default: [:]][seed] = failure
            } else {
                values[row.id, default: [:]][variant, default: [:]][seed] = row
            }
        }
    }

    /// What the collect stage gives the other two.
    struct Collected {
        var runs: [Run]
        var notLearned: [String: Double]     // runKey -> the acquisition that decided it
        var main: [Table], appendix: [Table] // in report order: parts, then the recipe's evaluators
        var byKind: [String: Table]          // the main tables by evaluator (the claims read them)

        /// Whether a run's results are shown: not a knowledge, editing or mechanism result of a
        /// run that did not learn its facts.
        func shown(_ r: Run) -> Bool { !(Report.isGated(r.job.kind) && notLearned[Report.runKey(r.job.variant, r.job.seed)] != nil) }
    }

    /// Read every finished job of `recipe` from `runner`'s directories and put their rows in tables.
    static func collect(_ recipe: Recipe, runner: RecipeRunner) throws -> Collected {
        var runs: [Run] = []
        for job in recipe.jobs where runner.state(job) == .done {
            let dir = runner.directory(job)
            let done = try runner.doneRecord(job)
            let report: JobReport
            if job.kind == Recipe.pretrainKind {
                report = PretrainMetrics.report(try MetricsLog.read(dir + "/metrics.jsonl"))
            } else {
                guard let e = EvaluatorRegistry.named(job.kind) else { continue }
                do {
                    report = try e.report(Data(contentsOf: URL(fileURLWithPath: dir + "/result.json")), dir)
                } catch {
                    throw RecipeError("\(dir): cannot read the \(job.kind) result: \(error)")
                }
            }
            runs.append(Run(job: job, done: done, report: report))
        }

        // tables: pretraining first, then the evaluators as the recipe lists them; appendix rows apart
        let kinds = recipe.kinds
        var tables: [String: Table] = [:]
        func table(_ kind: String, appendix: Bool) -> Table {
            let key = kind + (appendix ? "+appendix" : "")
            if let t = tables[key] { return t }
            let e = EvaluatorRegistry.named(kind)
            let t = Table(title: e?.title ?? PretrainMetrics.title, part: e?.part ?? .language, appendix: appendix)
            t.gated = isGated(kind)
            tables[key] = t
            return t
        }
        var collected = Collected(runs: runs, notLearned: notLearned(recipe, runs), main: [], appendix: [], byKind: [:])
        for r in runs where collected.shown(r) {
            for row in r.report.rows {
                let failure = r.report.validity.first { $0.gates(row.id) }?.failure
                table(r.job.kind, appendix: row.appendix).add(row, variant: r.job.variant, seed: r.job.seed, failure: failure)
            }
        }
        let ordered = { (appendix: Bool) in
            ReportPart.allCases.flatMap { part in
                kinds.compactMap { tables[$0 + (appendix ? "+appendix" : "")] }.filter { $0.part == part }
            }
        }
        collected.main = ordered(false)
        collected.appendix = ordered(true)
        collected.byKind = tables.filter { !$0.key.hasSuffix("+appendix") }
        return collected
    }

    static func runKey(_ variant: String, _ seed: UInt64) -> String { "\(variant)|\(seed)" }

    /// Whether the learned-threshold gate applies to an evaluator's results: every knowledge,
    /// editing and mechanism evaluator but fact acquisition itself, which decides it.
    static func isGated(_ kind: String) -> Bool {
        guard kind != AcquisitionRecipeEvaluator.name, let e = EvaluatorRegistry.named(kind) else { return false }
        return e.part != .language
    }

    /// The runs (runKey) that did not learn their facts, with the accuracy that decided it: the
    /// acquisition at the end on the training patterns of the run's most-stated bucket, below the
    /// recipe's learned-threshold.
    static func notLearned(_ recipe: Recipe, _ runs: [Run]) -> [String: Double] {
        guard let threshold = recipe.learnedThreshold else { return [:] }
        var out: [String: Double] = [:]
        let prefix = "acquisition.train."
        for r in runs where r.job.kind == AcquisitionRecipeEvaluator.name {
            let top = r.report.rows.filter { $0.id.hasPrefix(prefix) }.max { Int($0.id.dropFirst(prefix.count)) ?? 0 < Int($1.id.dropFirst(prefix.count)) ?? 0 }
            if let top, top.value < threshold { out[runKey(r.job.variant, r.job.seed)] = top.value }
        }
        return out
    }

}
