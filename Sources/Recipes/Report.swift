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
import Viz
import Foundation

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

    /// Build the report of `recipe` from the job directories of `runner`; `name` is the file
    /// stem (reports/<name>.md). Three stages: collect (ReportCollect.swift), analyse
    /// (ReportAnalysis.swift), render (ReportRender.swift).
    public static func build(_ recipe: Recipe, runner: RecipeRunner, name: String) throws -> Output {
        let collected = try collect(recipe, runner: runner)
        let missing = recipe.jobs.filter { runner.state($0) != .done }.map { (job: $0, state: runner.state($0).label) }
        return render(recipe, collected, analyse(recipe, collected), missing: missing, name: name)
    }

    /// Copy the files the report reads (`job.json`, `done.json`, `metrics.jsonl`, `result.json`
    /// and the per-unit records: every `.json` and `.jsonl` file, no checkpoint) of every finished
    /// job to `directory`/<job dir>/, so that a runner reading `jobs` from `directory` gives the
    /// same report without any checkpoint. The per-unit records (`<name>-probes.jsonl`, ...: most
    /// of the bytes) are kept gzip-compressed as `<file>.gz`, which `Results.readLines` reads.
    /// A job finished here replaces its copy; a copy of a job that is not finished here (run on
    /// another machine, whose checkpoints are gone) is kept; copies of jobs the recipe no longer
    /// has are dropped, and so are copies of evaluators of a pretraining run again here that did
    /// not make its copy's model (they evaluated the other model: a report would mix two models
    /// under one seed; `recipe run` runs them again). The old directory is replaced only once the
    /// new one is complete. Returns the bytes copied.
    public static func saveJobs(_ recipe: Recipe, runner: RecipeRunner, to directory: String) throws -> Int {
        let fm = FileManager.default
        let staging = directory + ".partial"
        try? fm.removeItem(atPath: staging)
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let kept = RecipeRunner(recipe: recipe, root: runner.root, jobs: directory, log: { _ in })
        func ofAnotherModel(_ job: Job) -> Bool {
            guard let p = job.dependsOn, runner.state(recipe.jobs[p]) == .done,
                  let again = try? runner.doneRecord(recipe.jobs[p]).reproduces else { return false }
            return !again.identical
        }
        var bytes = 0
        for job in recipe.jobs {
            let from: String
            if runner.state(job) == .done { from = runner.directory(job) }
            else if fm.fileExists(atPath: directory), kept.state(job) == .done, !ofAnotherModel(job) { from = kept.directory(job) }
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

/// "1 seed", "2 seeds": a count and its noun, plural unless 1.
func counted(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }

/// Text for a markdown table cell.
func cell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

extension ClosedRange where Bound == Double {
    /// x moved into the range.
    func clamp(_ x: Double) -> Double { Swift.min(Swift.max(x, lowerBound), upperBound) }
}