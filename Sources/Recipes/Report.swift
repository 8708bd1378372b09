// `droplab report recipes/X.toml` -> reports/X.md (+ SVG figures beside it). It reads like the
// study: the question, the setup in one table, the headline findings in words, then the
// study's parts, a table per evaluator in each, every variant against the baseline (means
// with their 95% t-intervals, the mean difference with its 95% t-interval, the two-sided p and
// the Holm-adjusted p over the table's rows), then figures, appendix tables (BLiMP per field
// and paradigm, values per seed), the jobs still missing and the provenance.
//
// Pairing: a model-level metric is paired by seed. A metric whose rows carry per-unit values
// (concepts, probes, facts: MetricRow.Units) is paired by unit within each seed, and the
// per-seed mean differences are combined over seeds (Statistics.unitPaired). Rows marked
// descriptive (throughput, counts) are shown, never tested.
//
// Everything comes from the stored job directories (done.json, metrics.jsonl, result.json and
// the records evaluators keep), never from the clock or the machine the report is made on, and
// every collection is walked in a fixed order, so regenerating gives identical bytes.

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

public enum Report {
    public struct Output {
        public var markdown: String
        public var files: [(name: String, content: String)]   // the markdown and the figures

        /// The report as one self-contained HTML page (`report --html`).
        public var html: String {
            let title = markdown.split(separator: "\n").first { $0.hasPrefix("# ") }.map { String($0.dropFirst(2)) } ?? "droplab report"
            return ReportHTML.page(title: title, markdown: markdown,
                                   figures: Dictionary(files.filter { $0.name.hasSuffix(".svg") }.map { ($0.name, $0.content) }, uniquingKeysWith: { a, _ in a }))
        }
    }

    /// Holm-adjusted p-values below this are reported as significant.
    static let alpha = 0.05

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

    /// A variant against the baseline on one row.
    struct Comparison {
        var test: Statistics.PairedTest
        var unitKind: String?          // paired by unit within seeds; nil: by seed
        var holm: Double? = nil
    }

    /// Seeds both variants have; by unit within those seeds when every one of them has units
    /// of one kind on both sides, else by seed.
    static func compare(_ t: Table, _ id: String, _ variant: String, _ base: String, seeds: [UInt64]) -> Comparison? {
        guard var c = pairedComparison(t, id, variant, base, seeds: seeds) else { return nil }
        // a difference of two values in [a, b] lies in [a - b, b - a]: the interval is cut there
        if let b = t.first[id]!.bounds {
            let range = (b.lowerBound - b.upperBound)...(b.upperBound - b.lowerBound)
            c.test.low = c.test.low.map { range.clamp($0) }; c.test.high = c.test.high.map { range.clamp($0) }
        }
        return c
    }

    static func pairedComparison(_ t: Table, _ id: String, _ variant: String, _ base: String, seeds: [UInt64]) -> Comparison? {
        guard !t.first[id]!.descriptive else { return nil }
        let pairs = seeds.compactMap { s in t.values[id]?[variant]?[s].flatMap { x in t.values[id]?[base]?[s].map { (x, $0) } } }
        guard !pairs.isEmpty else { return nil }
        let kinds = Set(pairs.flatMap { [$0.0.units?.kind, $0.1.units?.kind] })
        if kinds.count == 1, let kind = kinds.first! {
            let test = Statistics.unitPaired(pairs.map { ($0.0.units!.values, $0.1.units!.values) })
            if test.n == pairs.count { return Comparison(test: test, unitKind: kind) }
        }
        return Comparison(test: Statistics.pairedTTest(pairs.map(\.0.value), pairs.map(\.1.value)), unitKind: nil)
    }

    /// Build the report of `recipe` from the job directories of `runner`; `name` is the file
    /// stem (reports/<name>.md).
    public static func build(_ recipe: Recipe, runner: RecipeRunner, name: String) throws -> Output {
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
        let kinds = [Recipe.pretrainKind] + recipe.evaluators.map(\.evaluator.name)
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
        let notLearned = notLearned(recipe, runs)
        for r in runs where !(isGated(r.job.kind) && notLearned[runKey(r.job.variant, r.job.seed)] != nil) {
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
        let mainTables = ordered(false), appendixTables = ordered(true)

        let variants = recipe.variants
        let base = recipe.baseline
        let baseLabel = cell(recipe.variant(base)?.label ?? base)
        let others = variants.filter { $0.id != base }
        // comparisons, Holm-adjusted over a family: every comparison of the main tables (what the
        // headline findings draw from), and apart from it every comparison of the appendix
        var comparisons: [ObjectIdentifier: [String: [String: Comparison]]] = [:]
        for family in [mainTables, appendixTables] {
            var cs: [(table: Table, id: String, variant: String, c: Comparison)] = []
            for t in family {
                for id in t.order { for v in others { if let c = compare(t, id, v.id, base, seeds: recipe.seeds) { cs.append((t, id, v.id, c)) } } }
            }
            let adjusted = Statistics.holm(cs.map(\.c.test.p))
            for (k, x) in cs.enumerated() {
                var c = x.c
                c.holm = adjusted[k]
                comparisons[ObjectIdentifier(x.table), default: [:]][x.id, default: [:]][x.variant] = c
            }
        }

        let missing = recipe.jobs.filter { runner.state($0) != .done }
        var md = "# \(recipe.title)\n\n"
        md += "## Question\n\n\(recipe.question ?? recipe.title)\n\n"
        if let d = recipe.description { md += d.trimmingCharacters(in: .whitespacesAndNewlines) + "\n\n" }
        md += "Generated by `droplab report \(recipe.source.path)` from the stored results of its \(recipe.jobs.count) jobs"
        md += missing.isEmpty ? " (all done).\n\n"
            : " (**\(runs.count) done, \(missing.count) missing**: the numbers below use the finished ones; n is given per cell; see Missing jobs).\n\n"

        // the study's claims, when the recipe compares dropout against none
        if recipe.variant(base)?.options.dropout == 0, others.contains(where: { $0.options.dropout > 0 }) {
            md += claimsSection(recipe, main: tables.filter { !$0.key.hasSuffix("+appendix") }, comparisons, notLearned: notLearned, baseLabel: baseLabel)
        }
        md += setup(recipe, runs: runs.count, base: baseLabel)
        md += learnedSection(recipe, notLearned)
        md += validitySection(recipe, runs.filter { !(isGated($0.job.kind) && notLearned[runKey($0.job.variant, $0.job.seed)] != nil) })
        md += findings(mainTables, comparisons, others: others, baseLabel: baseLabel)

        for part in ReportPart.allCases {
            let ts = mainTables.filter { $0.part == part }
            guard !ts.isEmpty else { continue }
            md += "## \(part.title)\n\n\(part.question)\n\n"
            for t in ts { md += "### \(t.title)\n\n" + tableMarkdown(t, comparisons[ObjectIdentifier(t)] ?? [:], recipe, notLearned: notLearned) }
        }

        // figures
        var files: [(String, String)] = []
        var figureLinks: [String] = []
        var figureIDs: [String] = []
        var figures: [String: [(job: Job, figure: Figure)]] = [:]
        // a run whose results are withheld (it did not learn its facts, or a validity check failed) draws no figure
        for r in runs where !(isGated(r.job.kind) && notLearned[runKey(r.job.variant, r.job.seed)] != nil) && r.report.validity.allSatisfy(\.held) {
            for f in r.report.figures {
                if figures[f.id] == nil { figureIDs.append(f.id) }
                figures[f.id, default: []].append((r.job, f))
            }
        }
        for id in figureIDs {
            let fs = figures[id]!
            switch fs[0].figure.kind {
            case .curve:
                // per variant: its seeds' mean with their range as a band (LinePlot.seriesOverSeeds)
                var series: [LinePlot.Series] = [], labels: [String] = []
                for (i, v) in variants.enumerated() {
                    let curves = fs.filter { $0.job.variant == v.id }.compactMap { x -> [(x: Double, y: Double)]? in
                        guard case let .curve(points) = x.figure.kind else { return nil }
                        return points
                    }
                    series += LinePlot.seriesOverSeeds(curves, group: i)
                    labels.append(v.label + (curves.isEmpty ? "" : " (\(curves.count) seed\(curves.count == 1 ? "" : "s"))"))
                }
                var plot = LinePlot(title: "\(fs[0].figure.title) (\(recipe.title))", xLabel: fs[0].figure.xLabel, yLabel: fs[0].figure.yLabel,
                                    groups: labels, styles: [], series: series)
                if series.contains(where: { !$0.band.isEmpty }) { plot.notes = ["line: mean over the seeds", "band: their range"] }
                if series.contains(where: { $0.style > 0 }) { plot.notes.append("dashes: one seed each") }
                plot.markers = fs[0].figure.markers
                let file = "\(name)-\(id).svg"
                files.append((file, plot.svg()))
                figureLinks.append("[![\(fs[0].figure.title)](\(file))](\(file))")
            case .heatmap:
                for v in variants {
                    let grids = fs.filter { $0.job.variant == v.id }.compactMap { x -> (rows: [String], columns: [String], values: [[Double?]])? in
                        guard case let .heatmap(rows, columns, values) = x.figure.kind else { return nil }
                        return (rows, columns, values)
                    }
                    guard let g0 = grids.first else { continue }
                    let same = grids.filter { $0.rows == g0.rows && $0.columns == g0.columns }
                    guard let (mean, seeds) = meanGrid(same.map(\.values)) else {
                        figureLinks.append("\(fs[0].figure.title): \(v.label): no probes in any seed, nothing to draw.")
                        continue
                    }
                    let title = "\(fs[0].figure.title): \(v.label) (mean over \(seeds) seed\(seeds == 1 ? "" : "s"))"
                    let file = "\(name)-\(id)-\(v.id).svg"
                    files.append((file, Heatmap.svg(title: title, rowLabels: g0.rows, columnLabels: g0.columns, values: mean)))
                    figureLinks.append("[![\(title)](\(file))](\(file))")
                }
            }
        }
        if !figureLinks.isEmpty {
            md += "## Figures\n\nCurves: every variant (colour) and seed (dash). Heatmaps: one per variant, the mean over its seeds.\n\n"
            md += figureLinks.joined(separator: "\n\n") + "\n\n"
        }

        // appendix
        md += "## Appendix\n\n"
        for t in appendixTables { md += "### \(t.title) (appendix)\n\n" + tableMarkdown(t, comparisons[ObjectIdentifier(t)] ?? [:], recipe, notLearned: notLearned) }
        md += "### Values per seed\n\n"
        let columns = variants.flatMap { v in recipe.seeds.map { (v, $0) } }
        md += "| Metric | " + columns.map { "\(cell($0.0.label)) s\($0.1)" }.joined(separator: " | ") + " |\n"
        md += "|---|" + String(repeating: "---|", count: columns.count) + "\n"
        for t in mainTables + appendixTables {
            for id in t.order {
                md += "| \(cell(t.first[id]!.label)) |"
                for (v, seed) in columns { md += " \(t.values[id]?[v.id]?[seed].map { NumberFormat.value($0.value) } ?? "–") |" }
                md += "\n"
            }
        }

        if !missing.isEmpty {
            md += "\n## Missing jobs\n\n\(missing.count) of \(recipe.jobs.count) jobs are not done (`droplab recipe run \(recipe.source.path)` runs them):\n\n"
            for j in missing { md += "- \(j.name): \(runner.state(j).label)\n" }
        }
        md += Cost.section(recipe, runs: runs)
        md += provenance(recipe, runs: runs)
        files.insert(("\(name).md", md), at: 0)
        return Output(markdown: md, files: files)
    }

    static func runKey(_ variant: String, _ seed: UInt64) -> String { "\(variant)|\(seed)" }

    /// The cell-by-cell mean of seeds' heatmap grids of one layout, over the seeds with any value
    /// (a seed with no probe has nothing to add), and how many those are; nil when none has.
    static func meanGrid(_ grids: [[[Double?]]]) -> (values: [[Double?]], seeds: Int)? {
        let drawn = grids.filter { $0.contains { $0.contains { $0 != nil } } }
        guard let g0 = drawn.first else { return nil }
        let values = g0.indices.map { r in
            g0[r].indices.map { c -> Double? in
                let xs = drawn.compactMap { $0[r][c] }
                return xs.isEmpty ? nil : Statistics.mean(xs)
            }
        }
        return (values, drawn.count)
    }

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

    /// The runs that did not learn, and what that does to the tables.
    static func learnedSection(_ recipe: Recipe, _ notLearned: [String: Double]) -> String {
        guard let threshold = recipe.learnedThreshold else { return "" }
        var md = "## Runs that did not learn their facts\n\n"
        md += "A run whose fact acquisition at the end is below \(NumberFormat.value(threshold))% on the training patterns of its "
            + "most-stated bucket did not learn the facts the evaluators test: its knowledge, editing and mechanism results are "
            + "left out of every table, comparison and finding below (its acquisition is kept). "
        if notLearned.isEmpty { return md + "Every finished run learned its facts.\n\n" }
        md += "\(notLearned.count) run\(notLearned.count == 1 ? "" : "s"):\n\n| Variant | Seed | Accuracy at the end (%) |\n|---|---|---|\n"
        for v in recipe.variants {
            for s in recipe.seeds { if let a = notLearned[runKey(v.id, s)] { md += "| \(cell(v.label)) | \(s) | \(NumberFormat.value(a)) |\n" } }
        }
        return md + "\n"
    }

    /// A mean and its 95% t-interval: "m ± h", or "m [lo, hi]" when the interval leaves the metric's
    /// range and is cut at it (a cut interval covers the true value exactly when the whole one
    /// does, since the true value lies in the range). A half-width below 1e-9 of the mean is the
    /// rounding of equal values: 0.
    static func meanCell(_ s: Statistics.Summary, bounds: ClosedRange<Double>?) -> String {
        let h = s.halfWidth < 1e-9 * max(1, abs(s.mean)) ? 0 : s.halfWidth
        if let b = bounds, h.isFinite, s.mean - h < b.lowerBound || s.mean + h > b.upperBound {
            return "\(NumberFormat.value(s.mean)) [\(NumberFormat.value(b.clamp(s.mean - h))), \(NumberFormat.value(b.clamp(s.mean + h)))]"
        }
        // a spread of rounding noise or none: the seeds agree, and an interval would only print noise
        if h == 0 && s.n >= 2 { return "\(NumberFormat.value(s.mean)) (the same in every seed)" }
        return "\(NumberFormat.value(s.mean)) ± \(NumberFormat.value(h))"
    }

    /// The validity checks of the reported jobs: how many held, and each that failed, with the
    /// words its gated cells show.
    static func validitySection(_ recipe: Recipe, _ runs: [Run]) -> String {
        let checked = runs.filter { !$0.report.validity.isEmpty }
        guard !checked.isEmpty else { return "" }
        let all = checked.flatMap(\.report.validity), failed = all.filter { !$0.held }
        var md = "## Validity checks\n\n"
        md += "Each result is checked for whether it means what its rows say (measured on facts the model knows, "
            + "attributions that add up, the mask moved, the edit fit its training probes, the editor trained, the edits changed "
            + "predictions, the model does not give one answer everywhere): \(all.count) check\(all.count == 1 ? "" : "s") on \(checked.count) job\(checked.count == 1 ? "" : "s"), "
            + "\(failed.count) failed. A failed check's rows show its words in place of the number and are left out of every "
            + "comparison and finding.\n\n"
        md += glance(recipe, runs)
        guard !failed.isEmpty else { return md }
        md += "| Job | Check | Measured | Bound | Shown as |\n|---|---|---|---|---|\n"
        for r in checked {
            for c in r.report.validity where !c.held {
                md += "| \(cell(r.job.name)) | \(cell(c.check)) | \(c.value.map { NumberFormat.value($0) } ?? "–") | "
                    + "\(c.bound.map { NumberFormat.value($0) } ?? "–") | \(cell(c.failure)) |\n"
            }
        }
        return md + "\n"
    }

    /// Validity at a glance: per knowledge, editing and mechanism evaluator (rows) and variant
    /// (columns), its runs, the checks that held, the words of those that failed, and the known
    /// probes measured on.
    static func glance(_ recipe: Recipe, _ runs: [Run]) -> String {
        let kinds = recipe.evaluators.map(\.evaluator.name).filter { k in isGated(k) && runs.contains { $0.job.kind == k } }
        var md = "| Evaluator | " + recipe.variants.map { cell($0.label) }.joined(separator: " | ") + " |\n"
        md += "|---|" + String(repeating: "---|", count: recipe.variants.count) + "\n"
        for k in kinds {
            md += "| \(k) |"
            for v in recipe.variants {
                let these = runs.filter { $0.job.kind == k && $0.job.variant == v.id }
                let checks = these.flatMap(\.report.validity), held = checks.filter(\.held).count
                guard !these.isEmpty else { md += " – |"; continue }
                var c = "\(these.count) run\(these.count == 1 ? "" : "s"): " + (checks.isEmpty ? "no check" : "\(held) of \(checks.count) held")
                let failures = Array(Set(checks.filter { !$0.held }.map(\.failure))).sorted()
                if !failures.isEmpty { c += " (" + failures.joined(separator: "; ") + ")" }
                for (suffix, noun) in [(".known", "known probes"), (".known_facts", "known facts")] {
                    let known = checks.filter { $0.id.hasSuffix(suffix) }.compactMap(\.value).map { Int($0) }
                    if let lo = known.min(), let hi = known.max() { c += "; \(lo == hi ? "\(lo)" : "\(lo)–\(hi)") \(noun)" }
                }
                md += " \(cell(c)) |"
            }
            md += "\n"
        }
        return md + "\n"
    }

    /// The setup in one table.
    static func setup(_ recipe: Recipe, runs: Int, base: String) -> String {
        var md = "## Setup\n\n| | |\n|---|---|\n"
        let shared = Recipe.settings(recipe.source.root["pretrain"] as? [String: Any] ?? [:])
        md += "| Pretraining (every variant) | " + (shared.isEmpty ? "defaults" : shared.map { "`\($0.0) = \($0.1)`" }.joined(separator: ", ")) + " |\n"
        if let t = recipe.source.root["synthetic"] as? [String: Any] {
            let s = Recipe.settings(t)
            md += "| Synthetic corpus | `droplab corpus synth` " + (s.isEmpty ? "defaults" : s.map { "`\($0.0) = \($0.1)`" }.joined(separator: ", "))
            md += "; its corpus, probes and CounterFact cases are every job's data |\n"
        }
        if let t = recipe.source.root["facts"] as? [String: Any] {
            let s = Recipe.settings(t)
            md += "| Facts corpus | `droplab corpus facts` " + (s.isEmpty ? "defaults" : s.map { "`\($0.0) = \($0.1)`" }.joined(separator: ", "))
            md += "; its corpus, vocabulary and probes are every job's data |\n"
        }
        md += "| Variants | " + recipe.variants.map { v in
            let s = v.settings.map { "`\($0.0) = \($0.1)`" }.joined(separator: ", ")
            let early = v.options.earlyDropoutSteps.map { " (dropout off after step \($0))" } ?? ""
            return "\(cell(v.label))\(v.id == recipe.baseline ? " (baseline)" : ""): \(s.isEmpty ? "defaults" : s)\(early)"
        }.joined(separator: "; ") + " |\n"
        md += "| Seeds | \(recipe.seeds.map(String.init).joined(separator: ", ")). A job's seed is its init, data and dropout seed: the "
        md += "variants of one seed start from the same weights and see the same batches in the same order with the same masked "
        md += "tokens, so within a seed they differ only in their settings (and the dropout masks those draw). The seed is the "
        md += "replication unit. |\n"
        md += "| Evaluators | " + (recipe.evaluators.isEmpty ? "none" : recipe.evaluators.map { e in
            "\(e.evaluator.name): " + (e.settings.isEmpty ? "defaults" : e.settings.map { "`\($0.0) = \($0.1)`" }.joined(separator: ", "))
        }.joined(separator: "; ")) + " |\n"
        md += "| Comparisons | Every variant against \(base): the mean difference (variant − \(base)) with its 95% t-interval and "
        md += "the two-sided t-test. Model-level metrics are paired by seed (n: seeds). Metrics with per-unit values (n: seeds × "
        md += "concepts, probes or facts) are paired by unit within each seed, and the per-seed mean differences are the "
        md += "replicates over seeds (units of one seed share a model, so they are not independent replications); with one "
        md += "seed, the interval and test are over that seed's units. p (Holm): Holm's step-down correction across all "
        md += "comparisons of the main tables (the family the headline findings draw from; the appendix is a family of its own); "
        md += "significant: below \(alpha); otherwise not decided at this n (a t-test on 2-3 seeds detects only large "
        md += "differences). Throughput and counts describe the machine and the run: shown, not tested. Means: ± the 95% "
        md += "t-interval half-width over seeds; an interval that leaves its metric's range (0-100 for a percentage, 0-1 for a "
        md += "probability, ±1 for a probability difference; twice that for a difference of two) is cut at it and shown as "
        md += "[low, high]. ↓/↑: lower/higher is better. |\n"
        md += "| Jobs | \(runs) of \(recipe.jobs.count) done |\n\n"
        return md
    }

    /// The headline findings in words: the first tested row of every table, and every other
    /// row that is significant after Holm's correction.
    static func findings(_ tables: [Table], _ comparisons: [ObjectIdentifier: [String: [String: Comparison]]],
                         others: [Variant], baseLabel: String) -> String {
        var lines: [String] = []
        for t in tables {
            let cs = comparisons[ObjectIdentifier(t)] ?? [:]
            let headline = t.order.first { !t.first[$0]!.descriptive }
            for id in t.order {
                for v in others {
                    guard let c = cs[id]?[v.id], id == headline || (c.holm ?? 1) < alpha else { continue }
                    let row = t.first[id]!
                    var s = "- **\(cell(row.label))**, \(cell(v.label)) − \(baseLabel): \(NumberFormat.signed(c.test.meanDifference))"
                    if let lo = c.test.low, let hi = c.test.high {
                        s += " (95% CI \(NumberFormat.signed(lo)) to \(NumberFormat.signed(hi)), \(pairs(c)))"
                    } else {
                        s += " (\(pairs(c)))"
                    }
                    lines.append(s + ": " + decision(c, better: row.better, baseLabel: baseLabel))
                }
            }
        }
        let none = others.isEmpty ? "One variant: nothing to compare.\n"
            : "No comparison yet: no variant and the baseline have a finished job of the same seed.\n"
        return "## Headline findings\n\n" + (lines.isEmpty ? none : lines.joined(separator: "\n") + "\n") + "\n"
    }

    /// What a headline finding says of its comparison. With one seed, a difference significant
    /// over units (concepts, probes) is one about that pair of models, and says so.
    static func decision(_ c: Comparison, better: MetricRow.Better?, baseLabel: String) -> String {
        guard let h = c.holm else { return "not testable (fewer than two pairs, or the same difference in every pair)." }
        guard h < alpha else { return "not decided at this n (Holm-adjusted p = \(NumberFormat.pValue(h)))." }
        let direction = c.test.meanDifference > 0 ? "higher" : "lower"
        let judged = better.map { ($0 == .higher) == (c.test.meanDifference > 0) ? " (better)" : " (worse)" } ?? ""
        let over = c.test.n < 2 ? c.unitKind.map { " over the \($0)s of this one pair of models (one seed: nothing yet of other training runs)" } ?? "" : ""
        return "significantly \(direction)\(judged) than \(baseLabel)\(over) (Holm-adjusted p = \(NumberFormat.pValue(h)))."
    }

    /// "[low, high]" of a comparison's difference, nil without an interval.
    static func interval(_ c: Comparison) -> String? {
        c.test.low.flatMap { lo in c.test.high.map { "[\(NumberFormat.signed(lo)), \(NumberFormat.signed($0))]" } }
    }

    /// "2 seeds" or "2 seeds × 48 concepts".
    static func pairs(_ c: Comparison) -> String {
        let n = "\(c.test.n) seed\(c.test.n == 1 ? "" : "s")"
        guard let kind = c.unitKind, let u = c.test.units, let lo = u.min(), let hi = u.max() else { return n }
        return n + " × " + (lo == hi ? "\(lo)" : "\(lo)–\(hi)") + " \(kind)\(hi == 1 ? "" : "s")"
    }

    /// A table: per metric, the baseline's row, then one per other variant with the comparison.
    static func tableMarkdown(_ t: Table, _ cs: [String: [String: Comparison]], _ recipe: Recipe, notLearned: [String: Double]) -> String {
        let base = recipe.baseline
        let variants = [recipe.variant(base)!] + recipe.variants.filter { $0.id != base }
        var md = "| Metric | Variant | Mean ± 95% CI | Δ vs \(cell(recipe.variant(base)!.label)) [95% CI] | p | p (Holm) | n |\n"
        md += "|---|---|---|---|---|---|---|\n"
        for id in t.order {
            let row = t.first[id]!
            let arrow = row.better == .lower ? " ↓" : row.better == .higher ? " ↑" : ""
            for (k, v) in variants.enumerated() {
                md += "| " + (k == 0 ? cell(row.label) + arrow : "") + " | \(cell(v.label)) | "
                let xs = recipe.seeds.compactMap { t.values[id]?[v.id]?[$0]?.value }
                let failures = recipe.seeds.compactMap { t.withheld[id]?[v.id]?[$0] }
                let failed = Array(Set(failures)).sorted().joined(separator: "; ")
                if xs.isEmpty && t.gated && recipe.seeds.allSatisfy({ notLearned[runKey(v.id, $0)] != nil }) {
                    md += "did not learn |"
                } else if xs.isEmpty {
                    md += (failures.isEmpty ? "–" : cell(failed)) + " |"
                } else {
                    md += meanCell(Statistics.summarize(xs), bounds: row.bounds) + (xs.count < recipe.seeds.count ? " (n = \(xs.count))" : "")
                    md += (failures.isEmpty ? "" : " (\(failures.count) withheld: \(cell(failed)))") + " |"
                }
                if v.id == base {
                    md += " | | | \(xs.count) seed\(xs.count == 1 ? "" : "s") |\n"
                } else if row.descriptive {
                    md += " – | not tested | – | – |\n"
                } else if let c = cs[id]?[v.id] {
                    let ci = interval(c).map { " " + $0 } ?? " [n/a]"
                    md += " \(NumberFormat.signed(c.test.meanDifference))\(ci) | \(NumberFormat.pValue(c.test.p)) | \(NumberFormat.pValue(c.holm)) | \(pairs(c)) |\n"
                } else {
                    md += " – | – | – | 0 |\n"
                }
            }
        }
        return md + "\n"
    }

    /// Where the results came from: recipe, code versions, machines, dates, data, job directories.
    static func provenance(_ recipe: Recipe, runs: [Run]) -> String {
        var md = "\n## Provenance\n\n"
        md += "- Recipe: `\(recipe.source.path)`, sha256 `\(recipe.fileHash)`\n"
        var codes: [String: Int] = [:]
        for r in runs { codes[r.done.code.map { "`\($0)`" } ?? "unrecorded", default: 0] += 1 }
        md += "- Code (sha256 of the sources, at build time): " + (codes.isEmpty ? "–" : codes.keys.sorted().map { "\($0) (\(codes[$0]!) job\(codes[$0]! == 1 ? "" : "s"))" }.joined(separator: "; ")) + "\n"
        let commits = Array(Set(runs.map { "`\($0.done.commit)`" + ($0.done.dirty ? " (with uncommitted changes)" : "") })).sorted()
        md += "- Commit: " + (commits.isEmpty ? "–" : commits.joined(separator: "; ")) + "\n"
        var machines: [String: Int] = [:]
        for r in runs { machines[r.done.machine.description, default: 0] += 1 }
        md += "- Machine: " + (machines.isEmpty ? "–" : machines.keys.sorted().map { machines.count > 1 ? "\($0) (\(machines[$0]!) job\(machines[$0]! == 1 ? "" : "s"))" : $0 }.joined(separator: "; ")) + "\n"
        // an evaluator run on another kind of machine than its pretraining evaluated a model
        // pretrained there again: the same one only where the kernel and thread count were the same
        let apart = runs.compactMap { r -> String? in
            guard let p = r.job.dependsOn, let pre = runs.first(where: { $0.job.hash == recipe.jobs[p].hash }),
                  r.done.machine.differs(from: pre.done.machine) else { return nil }
            // a pretraining run again that made its copy's model bit for bit made the model evaluated there too
            if let again = pre.done.reproduces, again.identical, !r.done.machine.differs(from: again.machine) { return nil }
            return r.job.name
        }
        for r in runs { if let again = r.done.reproduces { md += "- \(r.job.name) was run again: \(again.description)\n" } }
        if !apart.isEmpty {
            md += "- **Evaluated on another machine than their pretraining** (a model pretrained again there, which is the one "
                + "evaluated only if the kernel and thread count matched): " + apart.joined(separator: ", ") + "\n"
        }
        if let first = runs.map(\.done.started).min(), let last = runs.map(\.done.finished).max() {
            md += "- Jobs ran: \(first) to \(last) (UTC)\n"
        }
        let hours = runs.map(\.done.seconds).reduce(0, +) / 3600
        md += "- Compute: " + String(format: "%.2f", hours) + " hours over \(runs.count) jobs (per job and kind: Cost)\n"
        var data: [String: Set<String>] = [:]
        for r in runs { for (p, h) in r.done.data { data[p, default: []].insert(h) } }
        md += "- Data (sha256):\n"
        for p in data.keys.sorted() {
            let hs = data[p]!.sorted()
            md += "  - `\(p)`: " + hs.map { "`\($0)`" }.joined(separator: ", ") + (hs.count > 1 ? " (**changed between jobs**)" : "") + "\n"
        }
        md += "- Jobs (`<checkpoints>/recipes/\(recipe.name)/<kind>-<hash>`):\n"
        for job in recipe.jobs {
            md += "  - \(job.name): `\(job.dirName)`" + (runs.first { $0.job.hash == job.hash }.map { " (\(duration($0.done.seconds)))" } ?? " (not done)") + "\n"
        }
        return md
    }

    /// "48m35s", "2h19m", "12s".
    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" : s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
    }

    /// Copy the files the report reads (`job.json`, `done.json`, `metrics.jsonl`, `result.json`
    /// and the per-unit records: every `.json` and `.jsonl` file, no checkpoint) of every finished
    /// job to `directory`/<job dir>/, so that a runner reading `jobs` from `directory` gives the
    /// same report without any checkpoint. The per-unit records (`<name>-probes.jsonl`, ...: most
    /// of the bytes) are kept gzip-compressed as `<file>.gz`, which `Results.readLines` reads.
    /// A job finished here replaces its copy; a copy of a job that is not finished here (run on
    /// another machine, whose checkpoints are gone) is kept; copies of jobs the recipe no longer
    /// has are dropped. The old directory is replaced only once the new one is complete.
    /// Returns the bytes copied.
    public static func saveJobs(_ recipe: Recipe, runner: RecipeRunner, to directory: String) throws -> Int {
        let fm = FileManager.default
        let staging = directory + ".partial"
        try? fm.removeItem(atPath: staging)
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let kept = RecipeRunner(recipe: recipe, root: runner.root, jobs: directory, log: { _ in })
        var bytes = 0
        for job in recipe.jobs {
            let from: String
            if runner.state(job) == .done { from = runner.directory(job) }
            else if fm.fileExists(atPath: directory), kept.state(job) == .done { from = kept.directory(job) }
            else { continue }
            let to = staging + "/" + job.dirName
            try fm.createDirectory(atPath: to, withIntermediateDirectories: false)
            for f in try fm.contentsOfDirectory(atPath: from).sorted() where [".json", ".jsonl", ".jsonl.gz"].contains(where: { f.hasSuffix($0) }) {
                let data = try Data(contentsOf: URL(fileURLWithPath: from + "/" + f))
                let (name, stored) = f.hasSuffix(".jsonl") && f != "metrics.jsonl" ? (f + ".gz", try Corpus.gzip(data)) : (f, data)
                try stored.write(to: URL(fileURLWithPath: to + "/" + name))
                bytes += stored.count
            }
        }
        let old = directory + ".old"
        try? fm.removeItem(atPath: old)
        if fm.fileExists(atPath: directory) { try fm.moveItem(atPath: directory, toPath: old) }
        try fm.moveItem(atPath: staging, toPath: directory)
        try? fm.removeItem(atPath: old)
        return bytes
    }

    /// Write the report's files into `directory` (atomically); returns their paths.
    @discardableResult
    public static func write(_ out: Output, to directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try out.files.map { name, content in
            let path = directory + "/" + name
            try Data(content.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            return path
        }
    }
}

/// Text for a markdown table cell.
func cell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

extension ClosedRange where Bound == Double {
    /// x moved into the range.
    func clamp(_ x: Double) -> Double { Swift.min(Swift.max(x, lowerBound), upperBound) }
}
