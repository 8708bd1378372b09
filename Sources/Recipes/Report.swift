// `droplab report recipes/X.toml` -> reports/X.md (+ X-val-loss.svg, X-train-loss.svg):
// per metric and variant the mean ± 95% t-interval over seeds, paired t-tests against the
// baseline variant, per-seed values, loss curves and a provenance block. Everything comes
// from the stored job directories (done.json, metrics.jsonl, result.json), never from the
// clock or the machine the report is made on, so regenerating gives identical bytes.

import Foundation

/// What a finished pretraining contributes: rows and curves from its metrics.jsonl.
enum PretrainMetrics {
    static func lines(_ path: String) throws -> [[String: Double]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            var out: [String: Double] = [:]
            for (k, v) in o { if let n = v as? NSNumber { out[k] = n.doubleValue } }
            return out
        }
    }

    static func rows(_ lines: [[String: Double]]) -> [MetricRow] {
        var rows: [MetricRow] = []
        if let last = lines.last(where: { $0["val_loss"] != nil }), let loss = last["val_loss"] {
            rows.append(MetricRow("pretrain.val_loss", "Pretraining: final validation MLM loss", loss, better: .lower))
            rows.append(MetricRow("pretrain.val_perplexity", "Pretraining: final validation perplexity", exp(loss), better: .lower))
            if let acc = last["val_accuracy"] {
                rows.append(MetricRow("pretrain.val_accuracy", "Pretraining: final validation accuracy (%)", 100 * acc, better: .higher))
            }
        }
        // tokens / time over the logged windows (evaluation time is not in the windows)
        var tokens = 0.0, seconds = 0.0, previous = 0.0
        for l in lines {
            guard let t = l["tokens"], let tps = l["tokens_per_s"], tps > 0 else { continue }
            let delta = t - previous
            previous = t
            if delta > 0 { tokens += delta; seconds += delta / tps }
        }
        if seconds > 0 { rows.append(MetricRow("pretrain.tokens_per_s", "Training tokens/s", tokens / seconds, better: .higher)) }
        return rows
    }

    static func curve(_ lines: [[String: Double]], _ key: String) -> [(x: Double, y: Double)] {
        lines.compactMap { l in
            guard let t = l["tokens"], let v = l[key] else { return nil }
            return (t, v)
        }
    }
}

public enum Report {
    public struct Output {
        public var markdown: String
        public var files: [(name: String, content: String)]   // the markdown and the plots
    }

    struct Run {
        var job: Job
        var done: DoneRecord
        var rows: [MetricRow]
    }

    /// Build the report of `recipe` from the job directories of `runner`; `name` is the
    /// file stem (reports/<name>.md).
    public static func build(_ recipe: Recipe, runner: RecipeRunner, name: String) throws -> Output {
        let dec = JSONDecoder()
        var runs: [Run] = []
        var curves: [Int: (val: [(x: Double, y: Double)], train: [(x: Double, y: Double)])] = [:]
        for (i, job) in recipe.jobs.enumerated() where runner.state(job) == .done {
            let dir = runner.directory(job)
            let done = try dec.decode(DoneRecord.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/done.json")))
            let rows: [MetricRow]
            if job.kind == Recipe.pretrainKind {
                let lines = try PretrainMetrics.lines(dir + "/metrics.jsonl")
                rows = PretrainMetrics.rows(lines)
                curves[i] = (PretrainMetrics.curve(lines, "val_loss"), PretrainMetrics.curve(lines, "train_loss"))
            } else {
                guard let e = EvaluatorRegistry.named(job.kind) else { continue }
                do {
                    rows = try e.rows(Data(contentsOf: URL(fileURLWithPath: dir + "/result.json")))
                } catch {
                    throw RecipeError("\(dir)/result.json: cannot read the \(job.kind) result: \(error)")
                }
            }
            runs.append(Run(job: job, done: done, rows: rows))
        }

        // rows in order of first appearance; values[row][variant][seed]
        var order: [String] = [], labels: [String: String] = [:], better: [String: MetricRow.Better] = [:]
        var values: [String: [String: [UInt64: Double]]] = [:]
        for r in runs {
            for m in r.rows {
                if labels[m.id] == nil { order.append(m.id); labels[m.id] = m.label; better[m.id] = m.better }
                values[m.id, default: [:]][r.job.variant, default: [:]][r.job.seed] = m.value
            }
        }

        let variants = recipe.variants
        let base = recipe.baseline
        let baseLabel = recipe.variant(base)?.label ?? base
        func arrow(_ id: String) -> String { better[id] == .lower ? " ↓" : better[id] == .higher ? " ↑" : "" }
        func cellLabel(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

        var md = "# \(recipe.title)\n\n"
        if let d = recipe.description { md += d.trimmingCharacters(in: .whitespacesAndNewlines) + "\n\n" }
        let doneCount = runs.count
        md += "Generated by `droplab report \(recipe.source.path)` from the stored results of its \(recipe.jobs.count) jobs"
        md += doneCount == recipe.jobs.count ? " (all done).\n\n" : " (**\(doneCount) done, \(recipe.jobs.count - doneCount) missing**: the numbers below use the finished ones).\n\n"

        // setup
        md += "## Setup\n\n"
        md += "Seeds: \(recipe.seeds.map(String.init).joined(separator: ", ")). "
        let baseSettings = Recipe.settings(recipe.source.root["pretrain"] as? [String: Any] ?? [:])
        md += "Pretraining (all variants): " + (baseSettings.isEmpty ? "defaults" : baseSettings.map { "`\($0.0) = \($0.1)`" }.joined(separator: ", ")) + ".\n\n"
        if let t = recipe.source.root["synthetic"] as? [String: Any] {
            let s = Recipe.settings(t)
            md += "Synthetic corpus (`droplab corpus synth`; its corpus, probes and CounterFact cases are every job's data): "
                + (s.isEmpty ? "defaults" : s.map { "`\($0.0) = \($0.1)`" }.joined(separator: ", ")) + ".\n\n"
        }
        md += "| Variant | Settings |\n|---|---|\n"
        for v in variants {
            let s = v.settings.map { "`\($0.0) = \($0.1)`" }.joined(separator: ", ")
            var extra = ""
            if let n = v.options.earlyDropoutSteps { extra = " (dropout off after step \(n))" }
            md += "| \(cellLabel(v.label))\(v.id == base ? " (baseline)" : "") | \(s.isEmpty ? "defaults" : s)\(extra) |\n"
        }
        md += "\n| Evaluator | Settings |\n|---|---|\n"
        md += "| pretrain | metrics.jsonl of the pretraining run |\n"
        for e in recipe.evaluators {
            let s = e.settings.map { "`\($0.0) = \($0.1)`" }.joined(separator: ", ")
            md += "| \(e.evaluator.name) | \(s.isEmpty ? "defaults" : s) |\n"
        }

        // results
        md += "\n## Results\n\n"
        md += "Mean ± half-width of the 95% t-interval over seeds (t quantile with n − 1 degrees of freedom; n/a with one seed). "
        md += "↓: lower is better, ↑: higher is better.\n\n"
        md += metricTableHeader(variants.map { cellLabel($0.label) })
        for id in order {
            md += "| \(cellLabel(labels[id]!))\(arrow(id)) |"
            for v in variants {
                let xs = recipe.seeds.compactMap { values[id]?[v.id]?[$0] }
                if xs.isEmpty { md += " – |"; continue }
                let s = Statistics.summarize(xs)
                md += " \(NumberFormat.value(s.mean)) ± \(NumberFormat.value(s.halfWidth))"
                if xs.count != recipe.seeds.count { md += " (n = \(xs.count))" }
                md += " |"
            }
            md += "\n"
        }

        let others = variants.filter { $0.id != base }
        if !others.isEmpty {
            md += "\n## Differences from \(baseLabel)\n\n"
            md += "Mean difference (variant − \(baseLabel)) over the seeds both have, and the two-sided paired t-test p-value "
            md += "(pairs by seed; n/a with fewer than two pairs or identical differences).\n\n"
            md += metricTableHeader(others.map { cellLabel($0.label) })
            for id in order {
                md += "| \(cellLabel(labels[id]!))\(arrow(id)) |"
                for v in others {
                    let seeds = recipe.seeds.filter { values[id]?[v.id]?[$0] != nil && values[id]?[base]?[$0] != nil }
                    if seeds.isEmpty { md += " – |"; continue }
                    let t = Statistics.pairedTTest(seeds.map { values[id]![v.id]![$0]! }, seeds.map { values[id]![base]![$0]! })
                    let p = NumberFormat.pValue(t.p)
                    md += " \(NumberFormat.signed(t.meanDifference)) (p \(p.hasPrefix("<") ? "< " + p.dropFirst() : "= " + p)) |"
                }
                md += "\n"
            }
        }

        md += "\n## Per seed\n\n"
        let columns = variants.flatMap { v in recipe.seeds.map { (v, $0) } }
        md += metricTableHeader(columns.map { "\(cellLabel($0.0.label)) s\($0.1)" })
        for id in order {
            md += "| \(cellLabel(labels[id]!)) |"
            for (v, seed) in columns { md += " \(values[id]?[v.id]?[seed].map { NumberFormat.value($0) } ?? "–") |" }
            md += "\n"
        }

        // plots
        var files: [(String, String)] = []
        var groups: [String: Int] = [:]
        for (k, v) in variants.enumerated() { groups[v.id] = k }
        let styles = recipe.seeds.map { "seed \($0)" }
        func plot(_ title: String, _ yLabel: String, _ pick: ((val: [(x: Double, y: Double)], train: [(x: Double, y: Double)])) -> [(x: Double, y: Double)]) -> LinePlot {
            let series = recipe.jobs.indices.compactMap { i -> LinePlot.Series? in
                guard let c = curves[i] else { return nil }
                let j = recipe.jobs[i]
                return LinePlot.Series(group: groups[j.variant] ?? 0, style: recipe.seeds.firstIndex(of: j.seed) ?? 0, points: pick(c))
            }
            return LinePlot(title: title, xLabel: "training tokens", yLabel: yLabel,
                            groups: variants.map(\.label), styles: styles, series: series)
        }
        var val = plot("Validation MLM loss (\(recipe.title))", "validation MLM loss", { $0.val })
        val.markers = true
        let train = plot("Training loss (\(recipe.title))", "training MLM loss (mean over the log window)", { $0.train })
        files.append(("\(name)-val-loss.svg", val.svg()))
        files.append(("\(name)-train-loss.svg", train.svg()))
        md += "\n## Curves\n\n"
        md += "Every variant (color) and seed (dash) of the pretraining runs.\n\n"
        md += "[![Validation MLM loss against training tokens](\(name)-val-loss.svg)](\(name)-val-loss.svg)\n\n"
        md += "[![Training loss against training tokens](\(name)-train-loss.svg)](\(name)-train-loss.svg)\n"

        // provenance
        md += "\n## Provenance\n\n"
        md += "- Recipe: `\(recipe.source.path)`, sha256 `\(recipe.fileHash)`\n"
        let commits = Array(Set(runs.map { "`\($0.done.commit)`" + ($0.done.dirty ? " (with uncommitted changes)" : "") })).sorted()
        md += "- Commit: " + (commits.isEmpty ? "–" : commits.joined(separator: "; ")) + "\n"
        let machines = Array(Set(runs.map { "\($0.done.machine.cpu), \($0.done.machine.cores) cores, \($0.done.machine.os)" })).sorted()
        md += "- Machine: " + (machines.isEmpty ? "–" : machines.joined(separator: "; ")) + "\n"
        if let first = runs.map(\.done.started).min(), let last = runs.map(\.done.finished).max() {
            md += "- Jobs ran: \(first) to \(last) (UTC)\n"
        }
        let hours = runs.map(\.done.seconds).reduce(0, +) / 3600
        md += "- Compute: " + String(format: "%.2f", hours) + " hours over \(runs.count) jobs\n"
        var data: [String: Set<String>] = [:]
        for r in runs { for (p, h) in r.done.data { data[p, default: []].insert(h) } }
        md += "- Data (sha256):\n"
        for p in data.keys.sorted() {
            let hs = data[p]!.sorted()
            md += "  - `\(p)`: " + hs.map { "`\($0)`" }.joined(separator: ", ") + (hs.count > 1 ? " (**changed between jobs**)" : "") + "\n"
        }
        md += "- Jobs (`<checkpoints>/recipes/\(recipe.name)/<kind>-<hash>`):\n"
        for job in recipe.jobs {
            md += "  - \(job.name): `\(job.dirName)`" + (runs.contains { $0.job.hash == job.hash } ? "" : " (not done)") + "\n"
        }
        files.insert(("\(name).md", md), at: 0)
        return Output(markdown: md, files: files)
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

/// Markdown header of a table with a "Metric" column followed by `columns`.
private func metricTableHeader(_ columns: [String]) -> String {
    "| Metric | " + columns.joined(separator: " | ") + " |\n" + "|---|" + String(repeating: "---|", count: columns.count) + "\n"
}
