// CI's end-to-end check of recipes/smoke.toml through the command line: run every job into a
// temporary checkpoints root, write the report, check its tables (every number parses), its
// SVG plots (well-formed XML with polylines) and provenance; regenerate it byte for byte; a
// second run skips every job; a job without done.json runs again (a pretraining resumes).

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
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

    /// The table lines of a markdown section (`## title`): header, then rows of cells.
    func table(_ md: String, section: String) -> (header: [String], rows: [[String]]) {
        guard let start = md.range(of: "## \(section)\n") else { return ([], []) }
        let after = md[start.upperBound...]
        let body = after.range(of: "\n## ").map { after[..<$0.lowerBound] } ?? after
        let lines = body.split(separator: "\n").filter { $0.hasPrefix("|") }
        func cells(_ l: Substring) -> [String] {
            l.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map { $0.trimmingCharacters(in: .whitespaces) }
        }
        guard lines.count >= 2 else { return ([], []) }
        return (cells(lines[0]), lines.dropFirst(2).map(cells))
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
        let fm = FileManager.default

        let dry = try runDroplab(["recipe", "run", recipe, "--dry-run", "--root", root], cwd: repo)
        XCTAssertEqual(dry.status, 0, dry.stderr)
        let listed = jobs(dry.stdout)
        XCTAssertEqual(listed.count, 16, dry.stdout)
        XCTAssertTrue(listed.allSatisfy { $0.state == "pending" }, dry.stdout)
        XCTAssertFalse(fm.fileExists(atPath: root), "--dry-run writes nothing")

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
        let results = table(md, section: "Results")
        XCTAssertEqual(results.header, ["Metric", "No dropout", "Dropout 0.1"])
        let labels = results.rows.map { $0[0] }
        for needed in ["Pretraining: final validation MLM loss", "Pretraining: final validation perplexity", "Training tokens/s",
                       "eval mlm: validation MLM loss", "eval mlm: perplexity", "BLiMP accuracy (%)", "SQuAD v1.1 EM", "SQuAD v1.1 F1"] {
            XCTAssertTrue(labels.contains { $0.hasPrefix(needed) }, "no row '\(needed)' in \(labels)")
        }
        var means: [String: [Double]] = [:]
        for row in results.rows {
            XCTAssertEqual(row.count, 3, "\(row)")
            for cell in row.dropFirst() {
                let parts = cell.components(separatedBy: " ± ")
                XCTAssertEqual(parts.count, 2, "'\(cell)' is not mean ± half-width")
                XCTAssertNotNil(number(parts[0]), "'\(cell)': mean does not parse")
                XCTAssertNotNil(number(parts.last!), "'\(cell)': half-width does not parse (two seeds give an interval)")
                means[row[0], default: []].append(number(parts[0]) ?? .nan)
            }
        }
        let vocabSize = try String(contentsOfFile: TestData.fixtureVocab, encoding: .utf8).split(separator: "\n").count
        for m in means.first(where: { $0.key.hasPrefix("Pretraining: final validation MLM loss") })?.value ?? [] {
            XCTAssertLessThan(m, log(Double(vocabSize)), "pretraining should get below the uniform loss")
        }

        let diffs = table(md, section: "Differences from No dropout")
        XCTAssertEqual(diffs.header, ["Metric", "Dropout 0.1"])
        XCTAssertEqual(diffs.rows.count, results.rows.count)
        for row in diffs.rows {
            let cell = row[1]
            // "+0.01234 (p = 0.195)", "-2.5 (p < 0.0001)", "0 (p = n/a)"
            let parts = cell.split(separator: " ").map(String.init)
            XCTAssertEqual(parts.count, 4, cell)
            XCTAssertNotNil(number(parts[0]), "'\(cell)': difference does not parse")
            XCTAssertTrue(parts[1] == "(p" && (parts[2] == "=" || parts[2] == "<") && parts[3].hasSuffix(")"), cell)
            let p = String(parts[3].dropLast())
            if p != "n/a" {
                let v = number(p)
                XCTAssertNotNil(v, "'\(cell)': p-value does not parse")
                XCTAssertTrue((0...1).contains(v ?? -1), cell)
            }
        }
        let perSeed = table(md, section: "Per seed")
        XCTAssertEqual(perSeed.header.count, 5)
        for row in perSeed.rows { for cell in row.dropFirst() { XCTAssertNotNil(number(cell), "per-seed '\(cell)' does not parse") } }

        // plots: linked, present, well-formed SVG with a polyline per run
        for name in ["smoke-val-loss.svg", "smoke-train-loss.svg"] {
            XCTAssertTrue(md.contains("](\(name))"), "\(name) is not linked")
            let data = try Data(contentsOf: URL(fileURLWithPath: out + "/" + name))
            let parser = XMLParser(data: data)
            let check = SVGCheck()
            parser.delegate = check
            XCTAssertTrue(parser.parse(), "\(name): not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "")")
            XCTAssertEqual(check.elements.first, "svg", name)
            XCTAssertEqual(check.rootAttributes["xmlns"], "http://www.w3.org/2000/svg", name)
            XCTAssertGreaterThanOrEqual(check.elements.filter { $0 == "polyline" }.count, 4 + 1, "\(name): a polyline per run and the axes")
        }

        // provenance from the stored run metadata
        let provenance = md.components(separatedBy: "## Provenance").last ?? ""
        for needle in ["- Recipe: `recipes/smoke.toml`, sha256 `", "- Commit: `", "- Machine: ", "- Jobs ran: ",
                       "enwiki2015_wikiextractor_shard0.txt.gz`: `", "squad/dev-v1.1.json`: `", "blimp/data`: `"] {
            XCTAssertTrue(provenance.contains(needle), "provenance should contain '\(needle)'")
        }

        // regenerating gives identical bytes
        let first = try ["smoke.md", "smoke-val-loss.svg", "smoke-train-loss.svg"].map { try Data(contentsOf: URL(fileURLWithPath: out + "/" + $0)) }
        let again = try runDroplab(["report", recipe, "--root", root, "--out", out], cwd: repo)
        XCTAssertEqual(again.status, 0, again.stderr)
        let second = try ["smoke.md", "smoke-val-loss.svg", "smoke-train-loss.svg"].map { try Data(contentsOf: URL(fileURLWithPath: out + "/" + $0)) }
        XCTAssertEqual(first, second, "regenerated report differs")

        // a second run finds every job done
        let dry2 = try runDroplab(["recipe", "run", recipe, "--dry-run", "--root", root], cwd: repo)
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
        let dry3 = try runDroplab(["recipe", "run", recipe, "--dry-run", "--root", root], cwd: repo)
        let states = Dictionary(uniqueKeysWithValues: jobs(dry3.stdout).map { ($0.name, $0.state) })
        XCTAssertEqual(states[pre.name], "partial (resumes)")
        XCTAssertEqual(states[mlm.name], "incomplete (restarts)")
        XCTAssertEqual(states["squad/drop01/seed1"], "done")
        let only = try runDroplab(["recipe", "run", recipe, "--root", root, "--only", "mlm/*", "--dry-run"], cwd: repo)
        // the 4 mlm jobs, and the unfinished pretraining one of them needs
        XCTAssertEqual(jobs(only.stdout).map(\.name).sorted(), (listed.map(\.name).filter { $0.hasPrefix("mlm/") } + [pre.name]).sorted(),
                       only.stdout)
        let resumed = try runDroplab(["recipe", "run", recipe, "--root", root], cwd: repo)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("2 run, 14 already done"), resumed.stdout)
        XCTAssertTrue(resumed.stderr.contains("resumed from"), resumed.stderr)
        let after = try runDroplab(["report", recipe, "--root", root, "--out", out], cwd: repo)
        XCTAssertEqual(after.status, 0, after.stderr)
        XCTAssertEqual(table(try String(contentsOfFile: out + "/smoke.md", encoding: .utf8), section: "Results").rows,
                       results.rows, "the resumed pretraining and the rerun evaluation give the same numbers")
    }
}
