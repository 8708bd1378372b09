// CI's end-to-end check of recipes/smoke.toml through the command line: run every job into a
// temporary checkpoints root, write the report, check its sections, its tables (every number
// parses, Holm-adjusted p at least the raw p, throughput untested), its SVG plots (well-formed
// XML with polylines) and provenance; regenerate it byte for byte; a second run skips every
// job; a job without done.json runs again (a pretraining resumes); a pretraining run again
// beside its committed copy is compared with it.

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Recipes
import TestSupport
import XCTest

final class SmokeRecipeTests: XCTestCase {
    let recipe = "recipes/smoke.toml"

    /// (name, state, directory) of each job in a `--dry-run` listing.
    func jobs(_ listing: String) -> [(name: String, state: String, dir: String)] {
        listing.split(separator: "\n").filter { $0.hasPrefix("[") }.map { line in
            let parts = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            let rest = parts.dropFirst().drop { $0.hasSuffix("]") }   // "[ 1/16]" may be two tokens
            let name = rest.first!, dir = rest.last!
            return (name, rest.dropFirst().dropLast().joined(separator: " "), dir)
        }
    }

    /// The table after a heading (`### title`): header, then rows of cells.
    func table(_ md: String, _ heading: String) -> (header: [String], rows: [[String]]) {
        guard let start = md.range(of: "### \(heading)\n") else { return ([], []) }
        let lines = md[start.upperBound...].split(separator: "\n").drop { !$0.hasPrefix("|") }.prefix { $0.hasPrefix("|") }
        func cells(_ l: Substring) -> [String] {
            l.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map { $0.trimmingCharacters(in: .whitespaces) }
        }
        guard lines.count >= 2 else { return ([], []) }
        return (cells(lines.first!), lines.dropFirst(2).map(cells))
    }

    func number(_ s: String) -> Double? { Double(s.hasPrefix("+") ? String(s.dropFirst()) : s) }

    final class SVGCheck: NSObject, XMLParserDelegate {
        var elements: [String] = []
        var rootAttributes: [String: String] = [:]
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            if elements.isEmpty { rootAttributes = attributes }
            elements.append(name)
        }
    }

    func testSmokeRecipeEndToEnd() throws {
        let repo = TestData.repoRoot
        let shard = TestData.sharedData + "/wiki_en/enwiki2015_wikiextractor_shard0.txt.gz"
        guard FileManager.default.fileExists(atPath: shard) else { throw XCTSkip("no \(shard)") }
        let dir = try temporaryDirectory(self)
        let root = dir + "/checkpoints", out = dir + "/reports"
        let noReports = dir + "/no-reports"   // the listings below read no committed copies (not the repository's reports/)
        let fm = FileManager.default

        let dry = try runDroplab(["recipe", "run", recipe, "--dry-run", "--reports", noReports, "--root", root], cwd: repo)
        XCTAssertEqual(dry.status, 0, dry.stderr)
        let listed = jobs(dry.stdout)
        XCTAssertEqual(listed.count, 16, dry.stdout)
        XCTAssertTrue(listed.allSatisfy { $0.state == "pending" }, dry.stdout)
        XCTAssertFalse(fm.fileExists(atPath: root), "--dry-run writes nothing")
        let named = try runDroplab(["recipe", "run", "smoke", "--dry-run", "--reports", noReports, "--root", root], cwd: repo)
        XCTAssertEqual(named.stdout, dry.stdout, "the name `recipe list` shows resolves to \(recipe): \(named.stderr)")

        let started = Date()
        let run = try runDroplab(["recipe", "run", recipe, "--root", root], cwd: repo)
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(run.status, 0, run.stderr)
        print(String(format: "smoke recipe: 16 jobs in %.1fs", seconds))
        XCTAssertTrue(run.stderr.contains("[16/16] squad/drop01/seed1: done in"), run.stderr)
        XCTAssertTrue(run.stdout.contains("16 run, 0 already done"), run.stdout)
        for j in listed {
            let d = root + "/recipes/smoke/" + j.dir
            XCTAssertTrue(fm.fileExists(atPath: d + "/done.json"), "\(j.name): no done.json")
            XCTAssertTrue(fm.fileExists(atPath: d + "/job.json"), "\(j.name): no job.json")
            XCTAssertTrue(fm.fileExists(atPath: d + (j.name.hasPrefix("pretrain/") ? "/last.h5" : "/result.json")), j.name)
        }

        // the report
        let rep = try runDroplab(["report", recipe, "--root", root, "--out", out], cwd: repo)
        XCTAssertEqual(rep.status, 0, rep.stderr)
        let md = try String(contentsOfFile: out + "/smoke.md", encoding: .utf8)
        print(md)
        let sections = md.split(separator: "\n").filter { $0.hasPrefix("## ") }
        XCTAssertEqual(sections, ["## Question", "## The answer so far", "## The study's claims, checked", "## Setup", "## Headline findings", "## Part 1: Pretraining and language",
                                  "## Figures", "## Appendix", "## Cost", "## Provenance"])
        XCTAssertTrue(md.contains("| Jobs | 16 of 16 done |"), md)
        let headings = ["Pretraining", "Held-out masked LM (eval mlm)", "BLiMP", "SQuAD"]
        var rows: [[String]] = []
        for h in headings {
            let t = table(md, h)
            XCTAssertEqual(t.header, ["Metric", "Variant", "Mean ± 95% CI", "Δ vs No dropout [95% CI]", "p", "p (Holm)", "n"], h)
            XCTAssertEqual(t.rows.count % 2, 0, "\(h): a baseline and a variant row per metric")
            rows += t.rows
        }
        let labels = rows.map { $0[0] }.filter { !$0.isEmpty }
        for needed in ["Pretraining: final validation MLM loss", "Pretraining: final validation perplexity", "Training tokens/s",
                       "eval mlm: validation MLM loss", "eval mlm: perplexity", "BLiMP accuracy (%)", "SQuAD v1.1 EM", "SQuAD v1.1 F1"] {
            XCTAssertTrue(labels.contains { $0.hasPrefix(needed) }, "no row '\(needed)' in \(labels)")
        }
        var means: [String: [Double]] = [:]
        var metric = ""
        for row in rows {
            XCTAssertEqual(row.count, 7, "\(row)")
            if !row[0].isEmpty { metric = row[0] }
            XCTAssertEqual(row[1], row[0].isEmpty ? "Dropout 0.1" : "No dropout", "\(row)")
            // "mean ± half-width", or "mean [low, high]" when the interval is cut at the metric's range
            let cut = row[2].range(of: #"^\S+ \[\S+, \S+\]$"#, options: .regularExpression) != nil
            let parts = cut ? row[2].dropLast().components(separatedBy: CharacterSet(charactersIn: " [,")).filter { !$0.isEmpty }
                            : row[2].components(separatedBy: " ± ")
            XCTAssertEqual(parts.count, cut ? 3 : 2, "'\(row[2])' is neither mean ± half-width nor mean [low, high]")
            XCTAssertNotNil(number(parts[0]), "'\(row[2])': mean does not parse")
            XCTAssertNotNil(number(parts.last!), "'\(row[2])': interval does not parse (two seeds give an interval)")
            if cut { XCTAssertTrue(number(parts[1])! >= 0 && number(parts[2])! <= 100, "\(row): cut at 0-100 (only percentages are cut here)") }
            means[metric, default: []].append(number(parts[0]) ?? .nan)
            guard row[0].isEmpty else { XCTAssertEqual(row[3...5].joined(), "", "\(row)"); XCTAssertEqual(row[6], "2 seeds"); continue }
            if metric.hasPrefix("Training tokens/s") {
                XCTAssertEqual(Array(row[3...]), ["–", "not tested", "–", "–"], "throughput is not tested")
                continue
            }
            // "+0.01234 [-0.1, +0.2]", "0 [n/a]"; p and Holm p in [0, 1], Holm's at least p
            let delta = row[3].split(separator: " ", maxSplits: 1).map(String.init)
            XCTAssertNotNil(number(delta[0]), "'\(row[3])': difference does not parse")
            if delta[1] != "[n/a]" {
                let ci = delta[1].dropFirst().dropLast().components(separatedBy: ", ").compactMap(number)
                XCTAssertEqual(ci.count, 2, row[3])
                if ci.count == 2 { XCTAssertTrue(ci[0] <= number(delta[0])! && number(delta[0])! <= ci[1], row[3]) }
            }
            if let p = number(row[4]), let h = number(row[5]) {
                XCTAssertTrue((0...1).contains(p) && (0...1).contains(h) && h >= p, "\(row)")
            } else {
                XCTAssertTrue(row[4] == "n/a" || row[4] == "<0.0001", "\(row)")
            }
            XCTAssertEqual(row[6], "2 seeds")
        }
        let vocabSize = try String(contentsOfFile: TestData.fixtureVocab, encoding: .utf8).split(separator: "\n").count
        // the budget of PretrainTests.testLossFallsWellBelowUniform (~300 steps of 16 x 64 tokens), which
        // ends at 6.70 nats on every OpenBLAS kernel: ~1.7 nats below ln V = 8.37
        for m in means.first(where: { $0.key.hasPrefix("Pretraining: final validation MLM loss") })?.value ?? [] {
            XCTAssertLessThan(m, log(Double(vocabSize)), "pretraining should get below the uniform loss")
        }
        XCTAssertTrue(md.contains("- **Pretraining: final validation MLM loss**, Dropout 0.1 − No dropout: "), "a headline finding per table")
        let fields = table(md, "BLiMP (appendix)").rows.map { $0[0] }.filter { $0.hasPrefix("BLiMP field") }
        XCTAssertEqual(fields, ["BLiMP field morphology (%) ↑", "BLiMP field semantics (%) ↑", "BLiMP field syntax (%) ↑",
                                "BLiMP field syntax_semantics (%) ↑"])
        let perSeed = table(md, "Values per seed")
        XCTAssertEqual(perSeed.header.count, 5)
        XCTAssertGreaterThan(perSeed.rows.count, 67, "every row, the BLiMP paradigms included")
        for row in perSeed.rows { for cell in row.dropFirst() { XCTAssertNotNil(number(cell), "per-seed '\(cell)' does not parse") } }

        // plots: linked, present, well-formed SVG
        for name in ["smoke-val-loss.svg", "smoke-train-loss.svg"] {
            XCTAssertTrue(md.contains("](\(name))"), "\(name) is not linked")
            let data = try Data(contentsOf: URL(fileURLWithPath: out + "/" + name))
            let parser = XMLParser(data: data)
            let check = SVGCheck()
            parser.delegate = check
            XCTAssertTrue(parser.parse(), "\(name): not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "")")
            XCTAssertEqual(check.elements.first, "svg", name)
            XCTAssertEqual(check.rootAttributes["xmlns"], "http://www.w3.org/2000/svg", name)
            // 2 variants x 2 seeds: per variant the seeds' mean and their range as a band, and the axes
            XCTAssertEqual(check.elements.filter { $0 == "polyline" }.count, 2 + 1, "\(name): a mean line per variant and the axes")
            XCTAssertEqual(check.elements.filter { $0 == "polygon" }.count, 2, "\(name): a band per variant")
        }

        // provenance from the stored run metadata
        let provenance = md.components(separatedBy: "## Provenance").last ?? ""
        for needle in ["- Recipe: `recipes/smoke.toml`, sha256 `", "- Code (sha256 of the sources, at build time): `", "- Commit: `",
                       "- Machine: ", "- Jobs ran: ",
                       "enwiki2015_wikiextractor_shard0.txt.gz`: `", "squad/dev-v1.1.json`: `", "blimp/data`: `"] {
            XCTAssertTrue(provenance.contains(needle), "provenance should contain '\(needle)'")
        }

        // regenerating gives identical bytes
        let first = try ["smoke.md", "smoke-val-loss.svg", "smoke-train-loss.svg"].map { try Data(contentsOf: URL(fileURLWithPath: out + "/" + $0)) }
        let again = try runDroplab(["report", recipe, "--root", root, "--out", out], cwd: repo)
        XCTAssertEqual(again.status, 0, again.stderr)
        let second = try ["smoke.md", "smoke-val-loss.svg", "smoke-train-loss.svg"].map { try Data(contentsOf: URL(fileURLWithPath: out + "/" + $0)) }
        XCTAssertEqual(first, second, "regenerated report differs")

        // the pretrainings and the mlm evaluations under mpirun on 3 ranks (rank 0 keeps the
        // queue, ranks 1 and 2 run the jobs, with the kernel threads of the run above: the thread
        // count changes rounding) give the same tables and plots byte for byte (the BLiMP and
        // SQuAD jobs are left out: spreading jobs does not depend on what a job computes)
        if (try? mpirun()) != nil {
            let threads = ProcessInfo.processInfo.environment["DROPLAB_THREADS"] ?? String(ProcessInfo.processInfo.activeProcessorCount)
            let mpiStarted = Date()
            let mpi = try runDroplabMPI(ranks: 3, ["recipe", "run", recipe, "--root", dir + "/mpi", "--threads", threads, "--only", "mlm/*"], cwd: repo)
            XCTAssertEqual(mpi.status, 0, mpi.stderr)
            print(String(format: "smoke recipe on 3 ranks: 8 jobs in %.1fs", Date().timeIntervalSince(mpiStarted)))
            XCTAssertTrue(mpi.stderr.contains("on rank 1 in") && mpi.stderr.contains("on rank 2 in"), mpi.stderr)
            XCTAssertTrue(mpi.stdout.contains("8 run, 0 already done"), mpi.stdout)
            let mpiReport = try runDroplab(["report", recipe, "--root", dir + "/mpi", "--out", dir + "/mpi-reports"], cwd: repo)
            XCTAssertEqual(mpiReport.status, 0, mpiReport.stderr)
            let md2 = try String(contentsOfFile: dir + "/mpi-reports/smoke.md", encoding: .utf8)
            for h in ["Pretraining", "Held-out masked LM (eval mlm)"] {
                // every row but the throughput one and the variant row after it (measured, so they differ between any two
                // runs), and without the Holm column (its family is every comparison of the report, other tables included)
                func untimed(_ rows: [[String]]) -> [[String]] {
                    rows.indices.filter { i in !rows[i][0].contains("tokens/s") && !(i > 0 && rows[i - 1][0].contains("tokens/s")) }
                        .map { var r = rows[$0]; r.remove(at: 5); return r }
                }
                XCTAssertEqual(untimed(table(md2, h).rows), untimed(table(md, h).rows), h)
                XCTAssertFalse(table(md2, h).rows.isEmpty, h)
            }
            for name in ["smoke-val-loss.svg", "smoke-train-loss.svg"] {
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/mpi-reports/" + name)),
                               try Data(contentsOf: URL(fileURLWithPath: out + "/" + name)), name)
            }
            let rerun = try runDroplabMPI(ranks: 3, ["recipe", "run", recipe, "--root", dir + "/mpi", "--only", "mlm/*"], cwd: repo)
            XCTAssertTrue(rerun.stdout.contains("0 run, 4 already done"), rerun.stdout + rerun.stderr)   // the 4 mlm jobs (their pretrainings are done)
        }

        // the kept job files alone (no checkpoints root) give the same report
        let saved = try runDroplab(["report", recipe, "--root", root, "--out", out, "--save-jobs"], cwd: repo)
        XCTAssertEqual(saved.status, 0, saved.stderr)
        let kept = try fm.subpathsOfDirectory(atPath: out + "/smoke-jobs")
        XCTAssertFalse(kept.contains { $0.hasSuffix(".h5") }, "no checkpoints among the kept files")
        XCTAssertEqual(Set(kept.filter { !$0.contains("/") }), Set(listed.map(\.dir)))
        let elsewhere = dir + "/elsewhere"
        let fromKept = try runDroplab(["report", recipe, "--root", dir + "/nothing", "--jobs", out + "/smoke-jobs", "--out", elsewhere], cwd: repo)
        XCTAssertEqual(fromKept.status, 0, fromKept.stderr)
        let third = try ["smoke.md", "smoke-val-loss.svg", "smoke-train-loss.svg"].map { try Data(contentsOf: URL(fileURLWithPath: elsewhere + "/" + $0)) }
        XCTAssertEqual(first, third, "the report from the kept job files differs")
        // saving again on a machine without the checkpoints (a new machine) keeps every copy, and
        // the report it writes is read from them
        let resaved = try runDroplab(["report", recipe, "--root", dir + "/nothing", "--out", out, "--save-jobs"], cwd: repo)
        XCTAssertEqual(resaved.status, 0, resaved.stderr)
        XCTAssertEqual(Set(try fm.contentsOfDirectory(atPath: out + "/smoke-jobs")), Set(listed.map(\.dir)))
        XCTAssertEqual(try ["smoke.md", "smoke-val-loss.svg", "smoke-train-loss.svg"].map { try Data(contentsOf: URL(fileURLWithPath: out + "/" + $0)) },
                       first, "the report after a save without checkpoints differs")
        // and there a dry run marks every job as done on another machine (in the copies)
        let elsewhereDry = try runDroplab(["recipe", "run", recipe, "--dry-run", "--root", dir + "/nothing", "--reports", out], cwd: repo)
        XCTAssertEqual(elsewhereDry.status, 0, elsewhereDry.stderr)
        XCTAssertTrue(elsewhereDry.stdout.contains("16 of these jobs are done in the committed copies (\(out)/smoke-jobs)"), elsewhereDry.stdout)
        assertOneLineError(try runDroplab(["report", recipe, "--jobs", out + "/smoke-jobs", "--out", out, "--save-jobs"], cwd: repo),
                           contains: ["--save-jobs"])

        // a pretraining done in the copies and run again elsewhere is compared with its copy: the
        // same code, kernel and thread count make the same model, which the weights' sha256 decides
        let againRoot = dir + "/again", pre0 = listed.first { $0.name == "pretrain/nodrop/seed0" }!
        let copy = out + "/smoke-jobs/" + pre0.dir, here = againRoot + "/recipes/smoke/" + pre0.dir
        let rerunPre = try runDroplab(["recipe", "run", recipe, "--root", againRoot, "--reports", out, "--only", pre0.name], cwd: repo)
        XCTAssertEqual(rerunPre.status, 0, rerunPre.stderr)
        XCTAssertTrue(rerunPre.stderr.contains("pretrain/nodrop/seed0: the same model as its committed copy \(copy) ("), rerunPre.stderr)
        func record(_ d: String) throws -> DoneRecord {
            try JSONDecoder().decode(DoneRecord.self, from: Data(contentsOf: URL(fileURLWithPath: d + "/done.json")))
        }
        let againRecord = try record(here)
        let weights: String = try XCTUnwrap(againRecord.summary["weights"])
        XCTAssertEqual(againRecord.reproduces?.compared, "weights")
        XCTAssertEqual(againRecord.reproduces?.identical, true)
        XCTAssertEqual(try record(copy).summary["weights"], weights)
        let againReport = try runDroplab(["report", recipe, "--root", againRoot, "--out", againRoot + "/reports"], cwd: repo)
        XCTAssertEqual(againReport.status, 0, againReport.stderr)
        XCTAssertTrue(try String(contentsOfFile: againRoot + "/reports/smoke.md", encoding: .utf8)
                        .contains("- pretrain/nodrop/seed0 was run again: the same model as its committed copy \(copy) ("))
        // saving from there keeps the copies of that model's evaluators (the same model); had the
        // run made another model, they would be dropped (they evaluated the copy's model), the
        // pretraining's copy replaced, and every other model's copies kept
        let stale = dir + "/stale"
        let evaluatorsOf0 = Set(listed.filter { $0.name.hasSuffix("/nodrop/seed0") && $0.name != pre0.name }.map(\.dir))
        XCTAssertFalse(evaluatorsOf0.isEmpty)
        func saveFromAgain() throws -> Set<String> {
            try? fm.removeItem(atPath: stale)
            try fm.createDirectory(atPath: stale, withIntermediateDirectories: true)
            try fm.copyItem(atPath: out + "/smoke-jobs", toPath: stale + "/smoke-jobs")
            let saved = try runDroplab(["report", recipe, "--root", againRoot, "--out", stale, "--save-jobs"], cwd: repo)
            XCTAssertEqual(saved.status, 0, saved.stderr)
            return Set(try fm.contentsOfDirectory(atPath: stale + "/smoke-jobs"))
        }
        XCTAssertEqual(try saveFromAgain(), Set(listed.map(\.dir)))
        var notIdentical = againRecord
        notIdentical.reproduces?.identical = false
        try Canonical.json(notIdentical, pretty: true).write(to: URL(fileURLWithPath: here + "/done.json"))
        XCTAssertEqual(try saveFromAgain(), Set(listed.map(\.dir)).subtracting(evaluatorsOf0))
        try Canonical.json(againRecord, pretty: true).write(to: URL(fileURLWithPath: here + "/done.json"))
        // other weights are another model; a copy without a digest is compared on every logged
        // metric but throughput, where one changed value is another model
        var other = try record(copy)
        other.summary["weights"] = String(repeating: "0", count: 64)
        let differs = try Reproduction.compare(copy: copy, record: other, here: here, weights: weights)
        XCTAssertFalse(differs.identical)
        XCTAssertTrue(differs.description.contains("**not** the model of its committed copy"), differs.description)
        other.summary["weights"] = nil
        let byMetrics = try Reproduction.compare(copy: copy, record: other, here: here, weights: weights)
        XCTAssertEqual(byMetrics.compared, "metrics")
        XCTAssertTrue(byMetrics.identical)
        let metrics = try String(contentsOfFile: copy + "/metrics.jsonl", encoding: .utf8)
        let oneChanged = dir + "/one-changed"
        try fm.createDirectory(atPath: oneChanged, withIntermediateDirectories: true)
        var lines = metrics.split(separator: "\n").map(String.init)
        let last = try XCTUnwrap(lines.lastIndex { $0.contains("\"val_loss\":") })
        lines[last] = lines[last].replacingOccurrences(of: #""val_loss":[0-9.e+-]+"#, with: "\"val_loss\":99", options: .regularExpression)
        try lines.joined(separator: "\n").write(toFile: oneChanged + "/metrics.jsonl", atomically: true, encoding: .utf8)
        let changed = try Reproduction.compare(copy: oneChanged, record: other, here: here, weights: weights)
        XCTAssertFalse(changed.identical)
        XCTAssertEqual(changed.finalValLoss.first, 99)
        assertOneLineError(try runDroplab(["report", recipe, "--jobs", dir + "/missing"], cwd: repo), contains: ["--jobs", "missing"])

        // a second run finds every job done
        let dry2 = try runDroplab(["recipe", "run", recipe, "--dry-run", "--reports", noReports, "--root", root], cwd: repo)
        XCTAssertTrue(jobs(dry2.stdout).allSatisfy { $0.state == "done" }, dry2.stdout)
        XCTAssertTrue(dry2.stdout.contains("16 done"), dry2.stdout)
        let rerun = try runDroplab(["recipe", "run", recipe, "--root", root], cwd: repo)
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertTrue(rerun.stdout.contains("0 run, 16 already done"), rerun.stdout)

        // without done.json: an evaluator starts afresh, a pretraining resumes from last.h5
        // (here at its last step) and its finished evaluators stay done
        let pre = listed.first { $0.name == "pretrain/drop01/seed1" }!, mlm = listed.first { $0.name == "mlm/nodrop/seed1" }!
        try fm.removeItem(atPath: root + "/recipes/smoke/\(pre.dir)/done.json")
        try fm.removeItem(atPath: root + "/recipes/smoke/\(mlm.dir)/done.json")
        let dry3 = try runDroplab(["recipe", "run", recipe, "--dry-run", "--reports", noReports, "--root", root], cwd: repo)
        let states = Dictionary(uniqueKeysWithValues: jobs(dry3.stdout).map { ($0.name, $0.state) })
        XCTAssertEqual(states[pre.name], "partial (resumes)")
        XCTAssertEqual(states[mlm.name], "incomplete (restarts)")
        XCTAssertEqual(states["squad/drop01/seed1"], "done")
        let only = try runDroplab(["recipe", "run", recipe, "--root", root, "--only", "mlm/*", "--dry-run", "--reports", noReports], cwd: repo)
        // the 4 mlm jobs, and the unfinished pretraining one of them needs
        XCTAssertEqual(jobs(only.stdout).map(\.name).sorted(), (listed.map(\.name).filter { $0.hasPrefix("mlm/") } + [pre.name]).sorted(),
                       only.stdout)
        let resumed = try runDroplab(["recipe", "run", recipe, "--root", root], cwd: repo)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("2 run, 14 already done"), resumed.stdout)
        XCTAssertTrue(resumed.stderr.contains("resumed from"), resumed.stderr)
        let after = try runDroplab(["report", recipe, "--root", root, "--out", out], cwd: repo)
        XCTAssertEqual(after.status, 0, after.stderr)
        let resumedReport = try String(contentsOfFile: out + "/smoke.md", encoding: .utf8)
        XCTAssertEqual(headings.flatMap { table(resumedReport, $0).rows }, rows, "the resumed pretraining and the rerun evaluation give the same numbers")
    }
}
