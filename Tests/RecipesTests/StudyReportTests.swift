// The report and the job store on stored results written by the test (no training): the
// report's parts and tables, concept pairing within seeds against the closed form, Holm
// columns, untested throughput, merged BLiMP fields, partial studies (missing jobs, n per
// cell), byte-identical regeneration; jobs found under their first-scheme directory names
// (adopted when their data is unchanged, renamed by `run`), jobs marked as made by older
// code, the baked-in code version against the sources, units read back from probe records,
// and the logging options a resumed pretraining keeps.

@testable import Datasets
@testable import Evaluators
import Foundation
@testable import Recipes
import TestSupport
import Training
import XCTest

final class StudyReportTests: XCTestCase {
    var dir = ""
    var root: String { dir + "/ck" }

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/data/blimp/data", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir + "/data/pararel", withIntermediateDirectories: true)
        try "{}\n".write(toFile: dir + "/data/blimp/data/a.jsonl", atomically: true, encoding: .utf8)
        try "{}\n".write(toFile: dir + "/data/pararel/P17.jsonl", atomically: true, encoding: .utf8)
        try "Some text.\n".write(toFile: dir + "/corpus.txt", atomically: true, encoding: .utf8)
        try """
            title = "Synthetic study"
            question = "Does dropout change what a small BERT knows?"
            seeds = [0, 1]
            data-dir = "\(dir)/data"
            [pretrain]
            preset = "tiny"
            corpus = ["\(dir)/corpus.txt"]
            tokens = 100000
            log-every = 5
            [variants.nodrop]
            label = "No dropout"
            dropout = 0.0
            [variants.drop]
            label = "Dropout 0.1"
            dropout = 0.1
            [evaluators.blimp]
            [evaluators.ft]
            """.write(toFile: dir + "/r.toml", atomically: true, encoding: .utf8)
    }

    func recipe() throws -> Recipe { try Recipe(path: dir + "/r.toml") }

    /// Edit success per concept (%), by variant and seed: seed 0 pairs paris, rome, oslo
    /// (differences 5, 10, 0: mean 5), seed 1 pairs paris and rome only (10, 4: mean 7; oslo
    /// has no partner). Over seeds: 6. Paired by seed mean instead it would be (65 - 60 +
    /// 64.67 - 45) / 2 = 12.33.
    let success: [String: [UInt64: [(String, Double)]]] = [
        "nodrop": [0: [("paris", 50), ("rome", 60), ("oslo", 70)], 1: [("paris", 40), ("rome", 50)]],
        "drop": [0: [("paris", 55), ("rome", 70), ("oslo", 70)], 1: [("paris", 50), ("rome", 54), ("oslo", 90)]],
    ]

    func done(_ job: Job, code: String? = BuildInfo.sourceHash, data: [String: String]? = nil) throws -> Data {
        var digests: [String: String] = [:]
        for path in job.data { digests[path] = try DataDigests().digest(path) }
        let record = DoneRecord(job: job.dirName, kind: job.kind, variant: job.variant, seed: job.seed,
                                started: "2026-01-0\(job.seed + 1)T00:00:00Z", finished: "2026-01-0\(job.seed + 1)T01:00:00Z",
                                seconds: 60, resumed: false, code: code, commit: "abc", dirty: false,
                                // seed 0's jobs as recorded before the CPU's features were kept, seed 1's on another CPU
                                machine: job.seed == 0 ? .init(cpu: "test cpu", cores: 2, os: "test os")
                                    : .init(cpu: "test cpu", cores: 2, os: "test os", features: "AVX2", blas: "Haswell", threads: 1),
                                data: data ?? digests,
                                summary: [:])
        return try Canonical.json(record, pretty: true)
    }

    /// Every job of the recipe, finished, under its current directory name.
    func writeJobs(_ r: Recipe) throws {
        let runner = RecipeRunner(recipe: r, root: root, log: { _ in })
        for job in r.jobs {
            let d = runner.recipeDir + "/" + job.dirName
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            let s = Double(job.seed), drop = job.variant == "drop" ? 1.0 : 0.0
            switch job.kind {
            case "pretrain":
                let lines = [#"{"step":5,"tokens":1000,"train_loss":7.5,"tokens_per_s":\#(1000 + 100 * s),"val_loss":\#(7 + drop + s)}"#,
                             #"{"step":10,"tokens":2000,"train_loss":6.5,"tokens_per_s":\#(1100 + 10 * drop),"val_loss":\#(6 + 0.1 * drop + 0.2 * s + 0.01 * drop * s),"val_accuracy":0.1}"#]
                try (lines.joined(separator: "\n") + "\n").write(toFile: d + "/metrics.jsonl", atomically: true, encoding: .utf8)
            case "blimp":
                var result = BlimpResult(checkpoint: "x", options: BlimpOptions(), overall: .init(), perParadigm: [:], perPhenomenon: [:],
                                         perField: [:], seconds: 1)
                result.overall.correct = 6 + Int(s) + Int(drop); result.overall.total = 10
                result.perField["syntax/semantics"] = .init(); result.perField["syntax/semantics"]!.correct = 1
                result.perField["syntax/semantics"]!.total = 2
                result.perField["syntax_semantics"] = .init(); result.perField["syntax_semantics"]!.correct = 3
                result.perField["syntax_semantics"]!.total = 4
                result.perParadigm["adjunct_island"] = result.overall
                try Canonical.json(result, pretty: true).write(to: URL(fileURLWithPath: d + "/result.json"))
            default:
                let zero = EditMetrics(editSuccess: 0, editLocalization: 0, maskEditSuccess: 0, maskEditLocalization: 0)
                let concepts = success[job.variant]![job.seed]!
                let records = concepts.map { c, v in
                    EditConceptRecord(concept: c, rank: nil, trainProbes: 9, heldOutProbes: 1, unrelatedProbes: 1, otherTrainProbes: 9,
                                      before: zero, after: EditMetrics(editSuccess: v / 100, editLocalization: 0.5, maskEditSuccess: v / 100,
                                                                       maskEditLocalization: 0.5),
                                      steps: 1, firstLoss: nil, lastLoss: nil, seconds: 1)
                }
                try Results.jsonLines(records).write(to: URL(fileURLWithPath: d + "/ft-concepts.jsonl"))
                let mean = concepts.map(\.1).reduce(0, +) / Double(concepts.count) / 100
                let row = EditRow(rank: nil, concepts: concepts.count, before: zero,
                                  after: EditMetrics(editSuccess: mean, editLocalization: 0.5, maskEditSuccess: mean, maskEditLocalization: 0.5),
                                  seconds: 1)
                let result = EditResult(checkpoint: "x", method: "ft", options: FinetuneOptions(), evaluatedState: "final",
                                        trainableParameters: [:], rows: [row], concepts: concepts.map(\.0), skippedConcepts: 0,
                                        savedEdited: nil, seconds: 1)
                try Canonical.json(result, pretty: true).write(to: URL(fileURLWithPath: d + "/result.json"))
            }
            try done(job).write(to: URL(fileURLWithPath: d + "/done.json"))
        }
    }

    /// The rows of a section's first table (cells trimmed), after the heading `### title`.
    func table(_ md: String, _ title: String) -> [[String]] {
        guard let start = md.range(of: "### \(title)\n") else { return [] }
        return md[start.upperBound...].split(separator: "\n").drop { !$0.hasPrefix("|") }.prefix { $0.hasPrefix("|") }.dropFirst(2).map {
            $0.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }

    func testReportReadsLikeTheStudy() throws {
        let r = try recipe()
        try writeJobs(r)
        let runner = RecipeRunner(recipe: r, root: root, log: { _ in })
        let out = try Report.build(r, runner: runner, name: "r")
        let md = out.markdown
        print(md)
        // the order of the sections
        let sections = md.split(separator: "\n").filter { $0.hasPrefix("## ") }.map(String.init)
        XCTAssertEqual(sections, ["## Question", "## The answer so far", "## The study's claims, checked", "## Setup", "## Headline findings", "## Part 1: Pretraining and language",
                                  "## Part 4: Consistency and editing", "## Figures", "## Appendix", "## Cost", "## Provenance"])
        XCTAssertTrue(md.contains("## Question\n\nDoes dropout change what a small BERT knows?\n"))
        XCTAssertTrue(md.contains("| Seeds | 0, 1. A job's seed is its init, data and dropout seed"), md)
        XCTAssertTrue(md.contains("| Jobs | 12 of 12 done |"))

        // concept pairing within seeds, combined over seeds: the closed form of `success` (the first row, the change
        // at [MASK]: after − before, before 0 here)
        let ft = table(md, "Finetune edits")
        let row = try XCTUnwrap(ft.first { $0[0] == "" && $0[1] == "Dropout 0.1" })
        let expected = Statistics.pairedTTest([5, 7], [0, 0])
        XCTAssertEqual(expected.meanDifference, 6)
        XCTAssertEqual(row[3], "+6.000 [\(NumberFormat.signed(expected.low!)), \(NumberFormat.signed(expected.high!))]")
        XCTAssertEqual(row[4], NumberFormat.pValue(expected.p))
        XCTAssertEqual(row[6], "2 seeds × 2–3 concepts")
        // Holm over the table's four comparisons; each adjusted p at least the raw one
        for r in ft where r[1] == "Dropout 0.1" {
            // exact: Holm's p is min(1, a running max of p k) with k >= 1, and rounding (to Double, to the
            // printed digits) is monotone, so it never prints below p
            XCTAssertGreaterThanOrEqual(Double(r[5]) ?? 2, Double(r[4]) ?? 0, "\(r)")
        }
        // model-level rows are paired by seed; throughput is not tested
        let pre = table(md, "Pretraining")
        let loss = try XCTUnwrap(pre.firstIndex { $0[0] == "Pretraining: final validation MLM loss ↓" })
        let t = Statistics.pairedTTest([6.1, 6.31], [6, 6.2])
        XCTAssertEqual(pre[loss + 1][3], "\(NumberFormat.signed(t.meanDifference)) [\(NumberFormat.signed(t.low!)), \(NumberFormat.signed(t.high!))]")
        XCTAssertEqual(pre[loss + 1][6], "2 seeds")
        // the answer so far, in words: that comparison (its Holm p is above 0.05) and BLiMP's (no interval: the same difference in both seeds)
        XCTAssertTrue(md.contains("## The answer so far\n\nCompared: Dropout 0.1 against No dropout, `tiny` BERTs, seeds 0, 1; 12 of 12 jobs done. "
                                  + "No claim of the study is decided yet. Measured, not decided at this n: validation MLM loss, Dropout 0.1 − No dropout "
                                  + "\(NumberFormat.signed(t.meanDifference)) [\(NumberFormat.signed(t.low!)), \(NumberFormat.signed(t.high!))] (2 seeds); "
                                  + "BLiMP accuracy, Dropout 0.1 − No dropout +10.00 (2 seeds). The claims, one row each, follow.\n"), md)
        let tps = try XCTUnwrap(pre.firstIndex { $0[0] == "Training tokens/s ↑" })
        XCTAssertEqual(Array(pre[tps + 1][3...]), ["–", "not tested", "–", "–"])
        // Holm's family: every comparison of the main tables; the others here are perplexity, accuracy (the same
        // in every run: untestable), BLiMP (a difference of 10 in both seeds: untestable) and the four finetune
        // tested rows (the changes in edit success and at [MASK] as above, the localizations 0.5 everywhere: untestable;
        // the success levels are shown, not tested)
        let holm = Statistics.holm([t.p, Statistics.pairedTTest([exp(6.1), exp(6.31)], [exp(6), exp(6.2)]).p, nil, nil,
                                    expected.p, nil, expected.p, nil])
        XCTAssertEqual(pre[loss + 1][5], NumberFormat.pValue(holm[0]))

        // headline findings: the first row of every table in words
        XCTAssertTrue(md.contains("- **Finetune: change in edit success at [MASK], after − before (points)**, Dropout 0.1 − No dropout: +6.000 (95% CI"), md)
        XCTAssertTrue(md.contains("- **Pretraining: final validation MLM loss**, Dropout 0.1 − No dropout: +0.1050"), md)
        XCTAssertTrue(md.contains("not decided at this n (Holm-adjusted p = "))

        // BLiMP: one syntax_semantics field (4 of 6 right), in the appendix with the paradigms
        let blimp = table(md, "BLiMP (appendix)")
        XCTAssertEqual(blimp.map(\.[0]).filter { !$0.isEmpty }, ["BLiMP field syntax_semantics (%) ↑", "BLiMP paradigm adjunct_island (%) ↑"])
        XCTAssertFalse(md.contains("syntax/semantics"))
        XCTAssertTrue(md.contains("| BLiMP field syntax_semantics (%) | 66.67 | 66.67 | 66.67 | 66.67 |"), md)

        // figures and provenance
        XCTAssertEqual(out.files.map(\.name), ["r.md", "r-val-loss.svg", "r-train-loss.svg"])
        XCTAssertTrue(md.contains("- Code (sha256 of the sources, at build time): `\(BuildInfo.sourceHash)` (12 jobs)"))
        XCTAssertEqual(try Report.build(r, runner: runner, name: "r").markdown, md, "regenerated report differs")

        // a partial study: which jobs are missing, n per cell
        let blimpJob = r.jobs.first { $0.name == "blimp/drop/seed1" }!
        try FileManager.default.removeItem(atPath: runner.directory(blimpJob) + "/done.json")
        let partial = try Report.build(r, runner: RecipeRunner(recipe: r, root: root, log: { _ in }), name: "r").markdown
        XCTAssertTrue(partial.contains("(**11 done, 1 missing**"))
        XCTAssertTrue(partial.contains("## Missing jobs\n\n1 of 12 jobs are not done"))
        XCTAssertTrue(partial.contains("- blimp/drop/seed1: incomplete (restarts)"))
        let acc = table(partial, "BLiMP").first { $0[1] == "Dropout 0.1" }!
        XCTAssertTrue(acc[2].hasSuffix("(n = 1)"), "\(acc)")
        XCTAssertEqual(acc[6], "1 seed")
    }

    /// learned-threshold: a run whose acquisition at the end (training patterns, most-stated
    /// bucket) is below it is listed as "did not learn" and left out of the knowledge and editing
    /// tables (here Finetune), not out of Part 1 or of the acquisition table; a variant none of
    /// whose runs learned says so in place of a number. A recipe without acquisition cannot gate.
    func testRunsThatDidNotLearnAreLeftOut() throws {
        try "{}\n".write(toFile: dir + "/probes.jsonl", atomically: true, encoding: .utf8)
        let text = try String(contentsOfFile: dir + "/r.toml", encoding: .utf8)
        let gated = text.replacingOccurrences(of: "seeds = [0, 1]", with: "seeds = [0, 1]\nlearned-threshold = 50")
            + "\n[evaluators.acquisition]\nprobes = \"\(dir)/probes.jsonl\"\n"
        try gated.write(toFile: dir + "/r.toml", atomically: true, encoding: .utf8)
        let r = try recipe()
        XCTAssertEqual(r.learnedThreshold, 50)
        try writeJobs(r)
        let runner = RecipeRunner(recipe: r, root: root, log: { _ in })
        /// Acquisition at the end: bucket 4 (the most stated) decides, bucket 1 does not.
        func acquisition(_ accuracy: [String: [UInt64: Int]]) throws {
            for job in r.jobs where job.kind == "acquisition" {
                let a = accuracy[job.variant]![job.seed]!
                let groups = [AcquisitionGroup(bucket: 1, split: "train", probes: 100, correct: 90),
                              AcquisitionGroup(bucket: 4, split: "train", probes: 100, correct: a),
                              AcquisitionGroup(bucket: 4, split: "held-out", probes: 100, correct: 90)]
                let result = AcquisitionResult(run: "x", options: AcquisitionOptions(),
                                               points: [AcquisitionPoint(checkpoint: "last.h5", step: 10, tokens: 2000, groups: groups)])
                try Canonical.json(result, pretty: true).write(to: URL(fileURLWithPath: runner.directory(job) + "/result.json"))
            }
        }
        // dropout, seed 0 did not learn (30% < 50%): Finetune pairs seed 1 alone
        try acquisition(["nodrop": [0: 80, 1: 80], "drop": [0: 30, 1: 70]])
        var md = try Report.build(r, runner: runner, name: "r").markdown
        XCTAssertTrue(md.contains("## Runs that did not learn their facts\n\nA run whose fact acquisition at the end is below 50"), md)
        XCTAssertTrue(md.contains("| Dropout 0.1 | 0 | 30.00 |"), md)
        let ft = table(md, "Finetune edits")
        let drop = try XCTUnwrap(ft.first { $0[0] == "" && $0[1] == "Dropout 0.1" })
        XCTAssertTrue(drop[2].hasSuffix("(n = 1)"), "\(drop)")
        XCTAssertEqual(drop[6], "1 seed × 2 concepts", "seed 1 alone: paris and rome pair")
        XCTAssertEqual(table(md, "BLiMP").first { $0[1] == "Dropout 0.1" }![6], "2 seeds", "language results are not gated")
        let acq = table(md, "Fact acquisition (eval acquisition)")
        XCTAssertTrue(acq.contains { $0[1] == "Dropout 0.1" && $0[2] == "50.00 [0, 100.0]" }, "the acquisition table keeps every run (30 and 70: the interval cut at 0-100): \(acq)")
        // no run of the dropout variant learned: its cells say so, and nothing is compared
        try acquisition(["nodrop": [0: 80, 1: 80], "drop": [0: 30, 1: 49]])
        md = try Report.build(r, runner: runner, name: "r").markdown
        let none = try XCTUnwrap(table(md, "Finetune edits").first { $0[0] == "" && $0[1] == "Dropout 0.1" })
        XCTAssertEqual(Array(none[2...]), ["did not learn", "–", "–", "–", "0"])
        XCTAssertFalse(md.contains("- **Finetune: change in edit success at [MASK], after − before (points)**, Dropout 0.1"), "no finding from runs that did not learn")
        // the gate needs the acquisition evaluator
        try text.replacingOccurrences(of: "seeds = [0, 1]", with: "seeds = [0, 1]\nlearned-threshold = 50").write(toFile: dir + "/r.toml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try recipe()) { XCTAssertTrue("\($0)".contains("learned-threshold") && "\($0)".contains("[evaluators.acquisition]"), "\($0)") }
    }

    /// A failed validity check withholds the rows it gates: the cell shows its words, the run is
    /// left out of the comparison and the findings, and the check is listed with its numbers.
    /// Here the dropout finetunes did not fit their training probes ([MASK] accuracy 50% -> 60%,
    /// below the halfway bound 75%): seed 0 alone, then both seeds.
    func testFailedValidityChecksAreWithheld() throws {
        let r = try recipe()
        try writeJobs(r)
        let runner = RecipeRunner(recipe: r, root: root, log: { _ in })
        func unfit(seeds: [UInt64]) throws {
            for job in r.jobs where job.kind == "ft" && job.variant == "drop" && seeds.contains(job.seed) {
                let path = runner.directory(job) + "/result.json"
                var result = try JSONDecoder().decode(EditResult<FinetuneOptions>.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
                result.rows[0].before.trainMaskSuccess = 0.5; result.rows[0].after.trainMaskSuccess = 0.6
                try Canonical.json(result, pretty: true).write(to: URL(fileURLWithPath: path))
            }
        }
        var md = try Report.build(r, runner: runner, name: "r").markdown
        XCTAssertFalse(md.contains("## Validity checks"), "results without a check: no section")
        try unfit(seeds: [0])
        md = try Report.build(r, runner: runner, name: "r").markdown
        XCTAssertTrue(md.contains("## Validity checks\n\nEach result is checked"), md)
        XCTAssertTrue(md.contains("1 check on 1 job, 1 failed"), md)
        // at a glance: per evaluator and variant, the runs and their checks
        XCTAssertTrue(md.contains("| Evaluator | No dropout | Dropout 0.1 |\n|---|---|---|\n| ft | 2 runs: no check | 2 runs: 0 of 1 held (edit did not fit its training probes) |"), md)
        XCTAssertTrue(md.contains("| ft/drop/seed0 | [MASK] accuracy on the concepts' own training probes after the edit at least halfway from before (50.00%) to 100% | 60.00 | 75.00 | edit did not fit its training probes |"), md)
        let one = try XCTUnwrap(table(md, "Finetune edits").first { $0[0] == "" && $0[1] == "Dropout 0.1" })
        XCTAssertTrue(one[2].hasSuffix("(n = 1) (1 withheld: edit did not fit its training probes)"), "\(one)")
        XCTAssertEqual(one[6], "1 seed × 2 concepts", "seed 1 alone is compared")
        try unfit(seeds: [0, 1])
        md = try Report.build(r, runner: runner, name: "r").markdown
        let none = try XCTUnwrap(table(md, "Finetune edits").first { $0[0] == "" && $0[1] == "Dropout 0.1" })
        XCTAssertEqual(Array(none[2...]), ["edit did not fit its training probes", "–", "–", "–", "0"])
        XCTAssertFalse(md.contains("- **Finetune: change in edit success at [MASK], after − before (points)**, Dropout 0.1"), "no finding from withheld results")
        XCTAssertTrue(table(md, "Finetune edits").contains { $0[1] == "No dropout" && $0[2].hasPrefix("5") }, "the baseline keeps its numbers")
    }

    /// The knowledge evaluators' check: measured with known-only on at least 20 known probes;
    /// otherwise every row of the evaluator is withheld with the reason.
    func testKnowledgeResultsNeedKnownFacts() {
        var o = ProbeOptions()
        func check(_ n: Int) -> ValidityCheck { KnownFacts.check("lens", o, measured: n)[0] }
        XCTAssertEqual(check(288).failure, "not on known facts"); XCTAssertFalse(check(288).held); XCTAssertNil(check(288).value)
        o.knownOnly = true
        XCTAssertEqual(check(0).failure, "no probes"); XCTAssertFalse(check(0).held)
        XCTAssertEqual(check(19).failure, "too few known facts"); XCTAssertFalse(check(19).held); XCTAssertEqual(check(19).value, 19)
        XCTAssertTrue(check(20).held)
        XCTAssertTrue(check(19).gates("lens.layer1.accuracy")); XCTAssertFalse(check(19).gates("trace.total"))
        XCTAssertEqual(check(20).id, "lens.known")
    }

    /// Consistency over known facts is withheld below 20 known facts, and with the other
    /// consistency rows when one answer covers most probes; accuracy is never withheld.
    func testConsistencyOverKnownFactsChecks() throws {
        var r = ConsistencyResult(checkpoint: "m.h5", options: ConsistencyOptions(), probes: 100, facts: 40, accuracy: 0.3, consistency: 0.6,
                                  uniquePredictions: 2, perRelation: [:], perSplit: nil, counts: [:], seconds: 1)
        r.topPrediction = "paris"; r.topPredictionShare = 0.2; r.knownFacts = 19; r.knownConsistency = 0.7
        XCTAssertEqual(ConsistencyRecipeEvaluator.rows(r).map(\.id).filter { $0.hasPrefix("consistency.known") }, ["consistency.known", "consistency.known_facts"])
        func failed(_ r: ConsistencyResult) throws -> [String] {
            let checks = try ConsistencyRecipeEvaluator.validity(r, directory: "/nonexistent")
            return ConsistencyRecipeEvaluator.rows(r).map(\.id).filter { id in checks.contains { !$0.held && $0.gates(id) } }
        }
        XCTAssertEqual(try failed(r), ["consistency.known"])
        r.knownFacts = 20
        XCTAssertEqual(try failed(r), [])
        r.topPredictionShare = 0.6
        XCTAssertEqual(try failed(r), ["consistency.consistency", "consistency.known", "consistency.unique"])
    }

    /// MEND's check: the trained editor's [MASK] success beats the untrained one's on the test
    /// facts (paired per fact, 95% t-interval above 0); an editor no better than its untrained
    /// self (steps 0, or a flat loss) is withheld.
    func testMendValidity() throws {
        func check(_ pairs: [(Bool, Bool)], editLoss: [Double]? = nil) throws -> ValidityCheck {
            let recs = pairs.enumerated().map { i, p in
                MendFactRecord(fact: "f\(i)", relation: "P17", target: "x", prompt: "p", beforeRight: false, afterRight: p.0, untrainedRight: p.1,
                               paraphrases: 1, paraphrasesRightBefore: 0, paraphrasesRightAfter: 0, probBefore: 0, probAfter: 0)
            }
            try Results.jsonLines(recs).write(to: URL(fileURLWithPath: dir + "/mend-probes.jsonl"))
            let r = MendResult(checkpoint: "x", options: MendOptions(), layers: [1], trainConcepts: 2, testConcepts: 1, trainFacts: 4,
                               testFacts: pairs.count, beforeEditSuccess: 0, beforeParaphraseSuccess: 0, trained: MendMetrics(),
                               untrained: MendMetrics(), firstLoss: nil, lastLoss: nil, editLoss: editLoss, editor: "e.h5", seconds: 0)
            return try XCTUnwrap(MendRecipeEvaluator.validity(r, directory: dir).first)
        }
        // 8 of 10 flipped by the trained editor, none by the untrained: mean 80, sd 42.2, t(9) 2.262 -> 80 - 30.2 = 49.8 > 0
        let trained = try check(Array(repeating: (true, false), count: 8) + [(false, false), (false, false)])
        XCTAssertTrue(trained.held); XCTAssertEqual(trained.value!, 80 - 2.2622 * 42.164 / 10.0.squareRoot(), accuracy: 0.01)
        XCTAssertEqual(trained.gates, ["mend.trained.*"])
        XCTAssertTrue(trained.gates == ["mend.trained.*"] && !trained.gates("mend.trained.edit"), "a check that held gates nothing")
        let same = try check(Array(repeating: (true, true), count: 5) + Array(repeating: (false, false), count: 5))
        XCTAssertFalse(same.held); XCTAssertEqual(same.failure, "trained editor not shown better than the untrained one on 10 test facts")
        // the words say why: an edit loss that fell (3.0 -> 1.8 over the tenths) is an editor that trained, one that did not fall is not
        let pairs = Array(repeating: (true, true), count: 5) + Array(repeating: (false, false), count: 5)
        XCTAssertEqual(try check(pairs, editLoss: [3.0, 2.5, 1.8]).failure, "trained editor not shown better than the untrained one on 10 test facts")
        XCTAssertEqual(try check(pairs, editLoss: [0.57, 0.58, 0.579]).failure, "editor did not train (its edit loss did not fall)")
        XCTAssertTrue(same.gates("mend.trained.edit")); XCTAssertFalse(same.gates("mend.untrained.edit"))
        XCTAssertFalse(try check([(true, false)]).held, "one fact: no interval")
    }

    /// The claims table's verdicts: significant after Holm in the study's direction agrees,
    /// against it disagrees, otherwise not decided (and with one seed, always); "no better" and "the same" claims are
    /// contradicted only by a significant difference their way.
    func testClaimVerdicts() throws {
        func c(_ d: Double, holm: Double) -> Report.Comparison {
            Report.Comparison(test: Statistics.PairedTest(n: 3, meanDifference: d, t: 5, p: holm / 3, low: d - 1, high: d + 1), unitKind: nil, holm: holm)
        }
        XCTAssertEqual(Report.verdict(.sign(1), c(2, holm: 0.01), better: .lower), "agrees")
        XCTAssertEqual(Report.verdict(.sign(1), c(-2, holm: 0.01), better: .lower), "disagrees")
        XCTAssertEqual(Report.verdict(.sign(1), c(2, holm: 0.2), better: .lower), "not decided at this n")
        XCTAssertEqual(Report.verdict(.noBetter, c(-2, holm: 0.01), better: .lower), "disagrees (better)")
        XCTAssertEqual(Report.verdict(.noBetter, c(2, holm: 0.01), better: .lower), "agrees (worse)")
        XCTAssertEqual(Report.verdict(.same, c(2, holm: 0.01), better: .higher), "disagrees (a difference)")
        XCTAssertEqual(Report.verdict(.same, c(0.1, holm: 0.9), better: .higher), "not decided at this n (no difference detected)")
        var none = c(0, holm: 1); none.test.low = nil; none.test.high = nil
        XCTAssertEqual(Report.verdict(.sign(1), none, better: .lower), "not decided at this n (no interval)")
        // one seed paired by concept: significant over the concepts of one pair of models, no verdict on training runs
        var one = c(-2, holm: 0.0001); one.test.n = 1; one.unitKind = "concept"
        XCTAssertEqual(Report.verdict(.sign(1), one, better: .lower),
                       "not decided at this n (one seed: an interval over the concepts of one pair of models, not over training runs)")
        // and the headline finding says whose difference it is
        XCTAssertEqual(Report.decision(one, better: .lower, baseLabel: "No dropout"), "significantly lower (better) than No dropout over the "
                       + "concepts of this one pair of models (one seed: nothing yet of other training runs) (Holm-adjusted p = 0.000100).")
        one.test.n = 2
        XCTAssertEqual(Report.verdict(.sign(1), one, better: .lower), "disagrees")
        XCTAssertEqual(Report.decision(one, better: .lower, baseLabel: "No dropout"), "significantly lower (better) than No dropout (Holm-adjusted p = 0.000100).")

        // the answer paragraph, from the claims' rows: decided, measured but not decided, not testable (why), not measured
        let claims = Report.claims
        let rows = [Report.ClaimRow(claim: claims[0], variant: "Dropout 0.1", comparison: c(2, holm: 0.01), verdict: "agrees"),
                    Report.ClaimRow(claim: claims[4], variant: "Dropout 0.1", comparison: c(-1, holm: 0.4), verdict: "not decided at this n"),
                    Report.ClaimRow(claim: claims[5], variant: "Dropout 0.3", comparison: nil, verdict: "not testable here: did not learn its facts"),
                    Report.ClaimRow(claim: claims[5], variant: "Dropout 0.5", comparison: nil, verdict: "not testable here: did not learn its facts"),
                    Report.ClaimRow(claim: claims[1], variant: "–", comparison: nil, verdict: "not testable here: no blimp jobs in this recipe"),
                    Report.ClaimRow(claim: claims[6], variant: "Dropout 0.15", comparison: nil, verdict: "not measured yet (its jobs are missing)")]
        let r = try recipe()
        XCTAssertEqual(Report.answer(r, rows, done: 7, baseLabel: "No dropout"), "## The answer so far\n\nCompared: Dropout 0.1 against No dropout, "
                       + "`tiny` BERTs, seeds 0, 1; 7 of 12 jobs done. Decided: validation MLM loss, Dropout 0.1 − No dropout +2.000 [+1.000, +3.000] "
                       + "(3 seeds): agrees with the study. Measured, not decided at this n: binary-mask weights kept, Dropout 0.1 − No dropout "
                       + "-1.000 [-2.000, 0] (3 seeds). Not testable here: MEND edit success, Dropout 0.3, Dropout 0.5 (did not learn its facts). Not measured "
                       + "yet: 1 claim-variant pair. The claims, one row each, follow.\n\n")
    }

    /// Causal-trace rows fixed by the architecture are marked and never tested: in a 3-layer model,
    /// a state restored at the subject in the last layer alone (structurally 0), and the last
    /// block restored at [MASK] (the total effect); with a window of 3 the last layer's window
    /// reaches back a layer, and only the [MASK] block rows whose window includes the last layer stay marked.
    func testStructuralTraceRows() {
        func rows(window: Int) -> [String: MetricRow] {
            var o = TraceOptions(); o.window = window
            let ie: [[Double?]] = [[0.3, 0.01], [0.2, 0.1], [0.0, 0.5]]   // [layer][subject-last, mask]
            let r = TraceResult(checkpoint: "m.h5", options: o, probes: 10, traced: 10, sigma: 1, cleanProb: 0.6, corruptProb: 0.1, totalEffect: 0.5,
                                kinds: ["block", "ffn.out"].map { TraceKindResult(kind: $0, classes: ["subject-last", "mask"], indirectEffect: ie) },
                                counts: [:], seconds: 1)
            return Dictionary(uniqueKeysWithValues: TraceRecipeEvaluator.rows(r).map { ($0.id, $0) })
        }
        let one = rows(window: 1)
        for kind in ["block", "ffn.out"] {
            XCTAssertEqual(one["trace.\(kind).subject-last.layer2"]?.label, "Trace \(kind) IE at subject-last, layer 2 (structurally 0: no later layer reads it)")
            XCTAssertEqual(one["trace.\(kind).subject-last.layer2"]?.descriptive, true)
            XCTAssertEqual(one["trace.\(kind).subject-last.layer1"]?.descriptive, false)
        }
        XCTAssertEqual(one["trace.block.mask.layer2"]?.label, "Trace block IE at mask, layer 2 (structurally the total effect)")
        XCTAssertEqual(one["trace.block.mask.layer2"]?.descriptive, true)
        XCTAssertEqual(one["trace.ffn.out.mask.layer2"]?.descriptive, false, "the last FFN alone restored at [MASK] is not the whole output")
        XCTAssertEqual(one["trace.block.mask.layer1"]?.descriptive, false)
        // a window of 3: layer 2 restores layers 1-2, layers 1 and 0 layers 0-2 (cut at 0, it keeps its width)
        let three = rows(window: 3)
        XCTAssertEqual(three["trace.block.subject-last.layer2"]?.descriptive, false)
        XCTAssertEqual(three["trace.block.mask.layer1"]?.descriptive, true)
        XCTAssertEqual(three["trace.block.mask.layer0"]?.descriptive, true)
        XCTAssertEqual(three["trace.ffn.out.subject-last.layer0"]?.descriptive, false)
    }

    /// The analyse stage on hand-made tables: each row's comparison is the paired t-test over the
    /// seeds (with two seeds, df = 1: the t distribution is Cauchy's, P(|T| > t) = 1 - 2 atan(t) / pi,
    /// an independent closed form), a descriptive row gets none, an interval that leaves the
    /// difference's range is cut at it, and Holm's correction runs over the main tables together
    /// and over the appendix apart.
    func testAnalyseComparesAndCorrectsPerFamily() throws {
        let r = try recipe()   // seeds 0 and 1; baseline nodrop, variant drop
        func table(_ title: String, appendix: Bool = false, _ rows: [(MetricRow, nodrop: [Double], drop: [Double])]) -> Report.Table {
            let t = Report.Table(title: title, part: .language, appendix: appendix)
            for (row, a, b) in rows {
                for s in 0..<2 {
                    var x = row; x.value = a[s]; t.add(x, variant: "nodrop", seed: UInt64(s))
                    x.value = b[s]; t.add(x, variant: "drop", seed: UInt64(s))
                }
            }
            return t
        }
        let a = table("A", [(MetricRow("a.x", "x", 0, better: .lower), [1, 2], [2, 4]),            // differences 1, 2: t = 1.5 / 0.5 = 3
                            (MetricRow("a.n", "n", 0, descriptive: true), [1, 2], [5, 9])])
        let b = table("B", [(MetricRow.percent("b.y", "y (%)", 0, better: .higher), [10, 90], [90, 100])])   // 80, 10: t = 45 / 35
        let c = table("C", appendix: true, [(MetricRow("c.z", "z", 0), [0, 0], [1, 3])])                   // 1, 3: t = 2 / 1
        let cs = Report.analyse(r, Report.Collected(runs: [], notLearned: [:], main: [a, b], appendix: [c], byKind: [:]))
        func comparison(_ t: Report.Table, _ id: String) throws -> Report.Comparison { try XCTUnwrap(cs[ObjectIdentifier(t)]?[id]?["drop"]) }
        let cauchy = { (t: Double) in 1 - 2 * atan(t) / Double.pi }
        let x = try comparison(a, "a.x"), y = try comparison(b, "b.y"), z = try comparison(c, "c.z")
        XCTAssertNil(cs[ObjectIdentifier(a)]?["a.n"], "a descriptive row is not tested")
        // the p-values come from the incomplete beta function (continued fraction to 1e-12 or so): 1e-9 is far above its error
        XCTAssertEqual(x.test.meanDifference, 1.5); XCTAssertEqual(x.test.p!, cauchy(3), accuracy: 1e-9)
        XCTAssertEqual(y.test.meanDifference, 45); XCTAssertEqual(y.test.p!, cauchy(45.0 / 35), accuracy: 1e-9)
        XCTAssertEqual(z.test.p!, cauchy(2), accuracy: 1e-9)
        XCTAssertNil(x.unitKind, "model-level rows are paired by seed")
        // 45 ± t(0.975, 1) x 35 = 45 ± 444.6 leaves [-100, 100], the range of a difference of two percentages
        XCTAssertEqual(y.test.low, -100); XCTAssertEqual(y.test.high, 100)
        XCTAssertEqual(x.test.high!, 1.5 + 12.7062047 * 0.5, accuracy: 1e-6)
        // Holm over the main family {p(x), p(y)}: the smaller times 2, the larger times 1 (kept monotone); the appendix alone
        let (px, py) = (cauchy(3), cauchy(45.0 / 35))
        XCTAssertLessThan(px, py)
        XCTAssertEqual(x.holm!, 2 * px, accuracy: 1e-9)
        XCTAssertEqual(y.holm!, max(2 * px, py), accuracy: 1e-9)
        XCTAssertEqual(z.holm!, cauchy(2), accuracy: 1e-9, "the appendix is a family of its own")
    }

    /// A heatmap is the mean over the seeds that have values: a seed with no probe traced is not
    /// counted in "mean over n seeds", and no seed with a value draws nothing.
    func testMeanGrid() throws {
        let empty: [[Double?]] = [[nil, nil], [nil, nil]]
        let m = try XCTUnwrap(Report.meanGrid([[[1, nil], [3, 4]], empty, [[3, nil], [nil, 8]]]))
        XCTAssertEqual(m.seeds, 2)
        XCTAssertEqual(m.values, [[2, nil], [3, 6]])
        XCTAssertNil(Report.meanGrid([empty, empty]))
    }

    /// The projected wall time: jobs handed out in order to the next free rank once their
    /// pretraining is done, worked out by hand.
    func testMakespan() {
        // two models: pretraining 10, two evaluators of 5 each, in the recipe's order
        let durations: [Double] = [10, 5, 5, 10, 5, 5], deps: [Int?] = [nil, 0, 0, nil, 3, 3]
        XCTAssertEqual(Cost.makespan(durations, dependsOn: deps, workers: 1), 40)   // the sum
        // the second rank skips the waiting evaluators and starts the second pretraining; then two evaluators each
        XCTAssertEqual(Cost.makespan(durations, dependsOn: deps, workers: 2), 20)
        XCTAssertEqual(Cost.makespan(durations, dependsOn: deps, workers: 4), 15)
        XCTAssertEqual(Cost.makespan(durations, dependsOn: deps, workers: 16), 15)
        // 3 ranks: both pretrainings and nothing else until 10; then 4 evaluators on 3 ranks: 20
        XCTAssertEqual(Cost.makespan(durations, dependsOn: deps, workers: 3), 20)
        // evaluators whose pretraining is done (not among the jobs) start at once; jobs of no cost end at once
        XCTAssertEqual(Cost.makespan([5, 5, 5], dependsOn: [nil, nil, nil], workers: 2), 10)
        XCTAssertEqual(Cost.makespan([0, 0, 0], dependsOn: [nil, 0, 0], workers: 2), 0)
    }

    /// A mean's cell: its t-interval; cut at the metric's range; no interval of rounding noise
    /// when the seeds agree (an interval would print only noise, e.g. "56.73 ± 2.162e-14").
    func testMeanCells() {
        XCTAssertEqual(Report.meanCell(Statistics.summarize([56.73, 56.73 + 1e-12, 56.73]), bounds: 0...100), "56.73 (the same in every seed)")
        XCTAssertEqual(Report.meanCell(Statistics.summarize([56.73]), bounds: 0...100), "56.73 ± n/a")
        let spread = Statistics.summarize([1, 2, 3])   // mean 2, sd 1, t(2) 4.303: half-width 2.484
        XCTAssertEqual(Report.meanCell(spread, bounds: nil), "2.000 ± 2.484")
        XCTAssertEqual(Report.meanCell(spread, bounds: 0...100), "2.000 [0, 4.484]")
    }

    /// Cost gives the mean wall time per kind, on each machine, and the projected wall time of the
    /// recipe on 1, 4 and 16 machines; Provenance each job's.
    func testJobDurations() throws {
        XCTAssertEqual(Report.duration(2914.99), "48m35s"); XCTAssertEqual(Report.duration(8340), "2h19m"); XCTAssertEqual(Report.duration(12.4), "12s")
        let r = try recipe()
        try writeJobs(r)
        let md = try Report.build(r, runner: RecipeRunner(recipe: r, root: root, log: { _ in }), name: "r").markdown
        // every job took 60 s, seed 0's on one machine, seed 1's on another; 4 models of a pretraining and 2 evaluators:
        // 12 minutes on one machine; on 4, the pretrainings together (1 minute), then 8 evaluators 4 at a time (2 minutes);
        // on 16, the pretrainings, then all evaluators at once
        XCTAssertTrue(md.contains("\n| pretrain | 4/4 | 1m00s (4) | 1m00s (2) | 1m00s (2) |\n"), md)
        XCTAssertTrue(md.contains("- One model (its pretraining and every evaluator once): 3m00s\n"), md)
        XCTAssertTrue(md.contains("- The whole recipe (12 jobs): 12m00s of compute; 12m00s on 1 machine, 3m00s on 4 machines, 2m00s on 16 machines\n"), md)
        XCTAssertFalse(md.contains("What remains"), "every job is done")
        XCTAssertFalse(md.contains("(not done)"), "every job of the test recipe is done")
        // two machines whose CPUs share a model name are told apart, each with its jobs
        let perSeed = Dictionary(grouping: r.jobs, by: { $0.seed }).mapValues(\.count)
        XCTAssertTrue(md.contains("- Machine: test cpu (AVX2; OpenBLAS Haswell), 2 cores, 1 kernel thread, test os (\(perSeed[1]!) jobs); "
                                  + "test cpu (CPU features not recorded), 2 cores, test os (\(perSeed[0]!) jobs)\n"), md)
        XCTAssertFalse(md.contains("Evaluated on another machine"), "every seed ran on one machine")
        // one evaluator of seed 1 on another kind of CPU than its pretraining: named
        let moved = try XCTUnwrap(r.jobs.first { $0.seed == 1 && $0.kind == "blimp" && $0.variant == "drop" })
        let path = RecipeRunner(recipe: r, root: root, log: { _ in }).directory(moved) + "/done.json"
        var record = try JSONDecoder().decode(DoneRecord.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        record.machine.features = "AVX2, AVX-512, AVX512-BF16"; record.machine.blas = "Cooperlake"
        try Canonical.json(record, pretty: true).write(to: URL(fileURLWithPath: path))
        let md2 = try Report.build(r, runner: RecipeRunner(recipe: r, root: root, log: { _ in }), name: "r").markdown
        XCTAssertTrue(md2.contains("- **Evaluated on another machine than their pretraining** (a model pretrained again there, which is the one "
                                   + "evaluated only if the kernel and thread count matched): \(moved.name)\n"), md2)
    }

    /// IG's completeness check: attributions whose aggregate completeness error is above 5% (or
    /// was never recorded) withhold the attribution rows, not the completeness rows themselves.
    func testIGCompletenessCheck() throws {
        var o = IGOptions(); o.source.knownOnly = true
        func check(_ error: Double?) throws -> ValidityCheck {
            var r = IGResult(checkpoint: "x", options: o, probes: 40, alphas: [0.5], completenessError: nil, completenessErrorMax: nil,
                             layers: [], counts: [:], seconds: 0)
            r.completenessErrorAggregate = error
            return try XCTUnwrap(IGRecipeEvaluator.validity(r, directory: dir).first { $0.id == "ig.complete" })
        }
        XCTAssertTrue(try check(0.049).held); XCTAssertEqual(try check(0.049).value!, 4.9, accuracy: 1e-9)
        let incomplete = try check(0.2)
        XCTAssertFalse(incomplete.held); XCTAssertEqual(incomplete.failure, "attributions incomplete")
        XCTAssertTrue(incomplete.gates("ig.layer1.sum")); XCTAssertFalse(incomplete.gates("ig.completeness.aggregate"))
        XCTAssertEqual(try check(nil).failure, "completeness not recorded"); XCTAssertFalse(try check(nil).held)
    }

    /// ROME's and MEMIT's checks: an edit that leaves P(new) - P(true) where it was (a zero
    /// update) is withheld; MEMIT per number of edits, against the same cases unedited.
    func testEditorsThatChangedNothingAreWithheld() throws {
        func record(_ i: Int, before: Double, after: Double) -> RomeCaseRecord {
            RomeCaseRecord(id: i, subject: "s", prompt: "p", trueTarget: "a", newTarget: "b", layer: 0,
                           before: ["prompt_p_new": before, "prompt_p_true": 0.5], after: ["prompt_p_new": after, "prompt_p_true": 0.5],
                           updateNorm: 0, deltaNorm: 0, valueNorm: 1, finalLoss: nil)
        }
        func rome(_ recs: [RomeCaseRecord]) throws -> ValidityCheck {
            try Results.jsonLines(recs).write(to: URL(fileURLWithPath: dir + "/rome-cases.jsonl"))
            let r = RomeResult(checkpoint: "x", options: RomeOptions(), casesRead: recs.count, casesDroppedMultiPiece: 0, cases: recs.count, layer: 0,
                               before: CounterFactMetrics(), after: CounterFactMetrics(), updateNorm: 0, seconds: 0)
            return try XCTUnwrap(RomeRecipeEvaluator.validity(r, directory: dir).first)
        }
        let unchanged = try rome((0..<10).map { record($0, before: 0.1, after: 0.1) })
        XCTAssertFalse(unchanged.held); XCTAssertEqual(unchanged.failure, "edits changed nothing")
        XCTAssertTrue(unchanged.gates("rome.efficacy")); XCTAssertFalse(unchanged.gates("rome.layer"))
        // P(new) 0.1 -> 0.6 in 8 of 10 cases: changes 50 x 8 and 0 x 2 points, mean 40, sd 21.08, t(9) 2.262 -> 40 - 15.08 > 0
        let moved = try rome((0..<10).map { record($0, before: 0.1, after: $0 < 8 ? 0.6 : 0.1) })
        XCTAssertTrue(moved.held); XCTAssertEqual(moved.value!, 40 - 2.2622 * 21.082 / 10.0.squareRoot(), accuracy: 0.01)

        var m = CounterFactMetrics(); m.efficacy = 0.3
        var o = MemitOptions(); o.sequential = false
        let memit = MemitResult(checkpoint: "x", options: o, casesRead: 10, casesDroppedMultiPiece: 0, layers: [0], lambda: 1, keptShare: [0.5],
                                before: CounterFactMetrics(), points: [MemitPoint(edits: 1, memit: CounterFactMetrics(), before: CounterFactMetrics(),
                                                                                  memitUpdateNorm: 0, memitSeconds: 0),
                                                                       MemitPoint(edits: 10, memit: m, before: CounterFactMetrics(), memitUpdateNorm: 1, memitSeconds: 0)],
                                seconds: 0)
        try Results.jsonLines([RomeCaseRecord]()).write(to: URL(fileURLWithPath: dir + "/memit-cases.jsonl"))
        let checks = try MemitRecipeEvaluator.validity(memit, directory: dir)
        XCTAssertEqual(checks.map(\.id), ["memit.1.edited", "memit.10.edited"])
        XCTAssertFalse(checks[0].held); XCTAssertTrue(checks[0].gates("memit.1.efficacy")); XCTAssertFalse(checks[0].gates("memit.10.efficacy"))
        XCTAssertTrue(checks[1].held); XCTAssertEqual(checks[1].value!, 30, accuracy: 1e-9)
    }

    /// --dry-run marks jobs made by older or unrecorded code, and lists directories that belong
    /// to no job of the recipe as it is now.
    func testCodeVersionsAndStrayDirectories() throws {
        let r = try recipe()
        try writeJobs(r)
        let runner = RecipeRunner(recipe: r, root: root, log: { _ in })
        try FileManager.default.createDirectory(atPath: runner.recipeDir + "/ft-000000000000", withIntermediateDirectories: true)
        XCTAssertTrue(runner.listing(Array(r.jobs.indices)).contains("1 directory in \(runner.recipeDir) belongs to no job of the recipe as it is now "
                                                                    + "(earlier settings): ft-000000000000"))
        let ft0 = r.jobs.first { $0.name == "ft/nodrop/seed0" }!

        // code versions
        let ftJob = r.jobs.first { $0.name == "ft/drop/seed1" }!, pre = r.jobs.first { $0.name == "pretrain/nodrop/seed1" }!
        try done(ftJob, code: "0123").write(to: URL(fileURLWithPath: runner.recipeDir + "/" + ftJob.dirName + "/done.json"))
        try done(pre, code: nil).write(to: URL(fileURLWithPath: runner.recipeDir + "/" + pre.dirName + "/done.json"))
        let marked = RecipeRunner(recipe: r, root: root, log: { _ in })
        XCTAssertEqual(marked.olderCode(ftJob), "older code")
        XCTAssertEqual(marked.olderCode(pre), "unrecorded code")
        XCTAssertNil(marked.olderCode(ft0))
        let dry = marked.listing(Array(r.jobs.indices))
        XCTAssertTrue(dry.contains("10 done, 1 done (older code), 1 done (unrecorded code)"), dry)
    }

    /// MEND's training record becomes descriptive rows: the edit loss and the locality KL in the
    /// first and the last tenth of the steps (an editor whose loss does not fall is seen).
    func testMendTrainingRows() {
        var r = MendResult(checkpoint: "x", options: MendOptions(), layers: [1], trainConcepts: 2, testConcepts: 1, trainFacts: 4, testFacts: 2,
                           beforeEditSuccess: 0, beforeParaphraseSuccess: 0, trained: MendMetrics(), untrained: MendMetrics(),
                           firstLoss: nil, lastLoss: nil, editor: "e.h5", seconds: 0)
        XCTAssertFalse(MendRecipeEvaluator.rows(r).contains { $0.id.hasPrefix("mend.train.") }, "results without the record: no rows")
        r.editLoss = [8.2, 4, 0.6]; r.locality = [0, 0.1, 0.3]
        let rows = Dictionary(uniqueKeysWithValues: MendRecipeEvaluator.rows(r).map { ($0.id, $0) })
        XCTAssertEqual(rows["mend.train.edit_loss.first"]?.value, 8.2); XCTAssertEqual(rows["mend.train.edit_loss.last"]?.value, 0.6)
        XCTAssertEqual(rows["mend.train.locality.first"]?.value, 0); XCTAssertEqual(rows["mend.train.locality.last"]?.value, 0.3)
        XCTAssertEqual(rows["mend.train.edit_loss.first"]?.descriptive, true)
    }

    /// Units read back from the probe records: consistency per concept (the evaluator's own
    /// measures over the concept's probes), logit-lens correctness per probe (a probe met twice
    /// stays two units). Targets are cased probe words, predictions lowercased vocabulary tokens:
    /// a probe is right when its target ranks first.
    func testUnitsFromRecords() throws {
        func record(_ target: String, _ prediction: String, fact: String, pattern: Int) -> ConsistencyProbeRecord {
            ConsistencyProbeRecord(prompt: "\(fact) \(pattern) [MASK]", target: target, prediction: prediction, relation: "P17",
                                   pattern: pattern, fact: fact, prob: 0.5, rank: prediction == target.lowercased() ? 0 : 1)
        }
        // France: one fact, its two patterns disagree; Italy: one fact agreeing, one single-pattern fact wrong
        try Results.jsonLines([record("France", "france", fact: "f1", pattern: 0), record("France", "germany", fact: "f1", pattern: 1),
                               record("Italy", "italy", fact: "f2", pattern: 0), record("Italy", "italy", fact: "f2", pattern: 1),
                               record("Italy", "spain", fact: "f3", pattern: 0)])
            .write(to: URL(fileURLWithPath: dir + "/consistency-probes.jsonl"))
        let result = ConsistencyResult(checkpoint: "x", options: ConsistencyOptions(), probes: 5, facts: 3, accuracy: 0.6, consistency: 0.5,
                                       uniquePredictions: 2, perRelation: [:], counts: [:], seconds: 0)
        let u = try ConsistencyRecipeEvaluator.units(result, directory: dir)
        XCTAssertEqual(u["consistency.accuracy"]?.kind, "concept")
        XCTAssertEqual(u["consistency.accuracy"]?.values["France"], 50, "a cased target the model predicts counts as right")
        XCTAssertEqual(u["consistency.accuracy"]!.values["Italy"]!, 200.0 / 3, accuracy: 1e-12)   // 100 * 2/3: a few ulps of 67 (1.4e-14 each)
        XCTAssertEqual(u["consistency.consistency"]?.values, ["France": 0, "Italy": 100])
        XCTAssertEqual(u["consistency.unique"]?.values, ["France": 2, "Italy": 2])
        // the degenerate-predictor check: "italy" on 3 of 5 probes (60% > 50%) withholds consistency, not accuracy
        var one = result
        one.topPrediction = "italy"; one.topPredictionShare = 0.6
        let check = try XCTUnwrap(ConsistencyRecipeEvaluator.validity(one, directory: dir).first)
        XCTAssertFalse(check.held); XCTAssertEqual(check.value, 60); XCTAssertEqual(check.failure, "one answer everywhere")
        XCTAssertTrue(check.gates("consistency.consistency") && check.gates("consistency.unique") && !check.gates("consistency.accuracy"))
        one.topPredictionShare = 0.4
        XCTAssertTrue(try ConsistencyRecipeEvaluator.validity(one, directory: dir)[0].held)
        // a result without the share is checked on its records: "italy" 2 of 5 (the most frequent, ties by name)
        let fromRecords = try XCTUnwrap(ConsistencyRecipeEvaluator.validity(result, directory: dir).first)
        XCTAssertTrue(fromRecords.held); XCTAssertEqual(fromRecords.value, 40)
        XCTAssertTrue(fromRecords.check.hasPrefix("most frequent prediction (italy)"), fromRecords.check)

        let lens = [LensProbeRecord(prompt: "p [MASK]", target: "t", prediction: "t", relation: "P17", prob: [0.1, 0.9], rank: [3, 0], top1: ["a", "t"]),
                    LensProbeRecord(prompt: "p [MASK]", target: "t", prediction: "a", relation: "P17", prob: [0.2, 0.3], rank: [0, 1], top1: ["t", "a"])]
        try Results.jsonLines(lens).write(to: URL(fileURLWithPath: dir + "/lens-probes.jsonl"))
        let layers = [LensLayer(layer: 0, accuracy: 0.5, meanRank: 1.5, meanProb: 0.15), LensLayer(layer: 1, accuracy: 0.5, meanRank: 0.5, meanProb: 0.6)]
        let lu = try LensRecipeEvaluator.units(LensResult(checkpoint: "x", options: LensOptions(), probes: 2, layers: layers, counts: [:], seconds: 0),
                                               directory: dir)
        XCTAssertEqual(lu["lens.layer1.accuracy"]?.values, ["p [MASK] → t": 100, "p [MASK] → t #2": 0])
        XCTAssertEqual(lu["lens.layer0.prob"]?.values, ["p [MASK] → t": 0.1, "p [MASK] → t #2": 0.2])
        XCTAssertThrowsError(try LensRecipeEvaluator.units(LensResult(checkpoint: "x", options: LensOptions(), probes: 0, layers: layers,
                                                                      counts: [:], seconds: 0), directory: dir + "/none")) {
            XCTAssertTrue("\($0)".contains("none/lens-probes.jsonl: cannot read"), "\($0)")
        }
    }

    /// The code version baked in at build time is that of the sources being tested (the build
    /// plugin reran when they changed), with or without git.
    func testCodeVersionIsTheSources() throws {
        func version(_ environment: [String: String]) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = [TestData.repoRoot + "/tools/code_version.sh", TestData.repoRoot, dir + "/BuildInfo.swift"]
            p.environment = environment
            try p.run()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0)
            return try String(contentsOfFile: dir + "/BuildInfo.swift", encoding: .utf8)
        }
        let withGit = try version(ProcessInfo.processInfo.environment)
        XCTAssertTrue(withGit.contains("static let sourceHash = \"\(BuildInfo.sourceHash)\""), withGit)
        // a PATH with the script's tools but no git
        let bin = dir + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for tool in ["sha256sum", "find", "sort", "cut", "cmp", "mkdir", "dirname", "cat", "mv", "rm"] {
            let path = ["/usr/bin/", "/bin/"].map { $0 + tool }.first { FileManager.default.fileExists(atPath: $0) }
            try FileManager.default.createSymbolicLink(atPath: bin + "/" + tool, withDestinationPath: try XCTUnwrap(path, tool))
        }
        let withoutGit = try version(["PATH": bin])
        XCTAssertTrue(withoutGit.contains("static let sourceHash = \"\(BuildInfo.sourceHash)\""), withoutGit)
        XCTAssertTrue(withoutGit.contains("static let commit = \"unknown\"") && withoutGit.contains("static let dirty = false"), withoutGit)
    }

    /// A resumed pretraining keeps the logging options it was started with.
    func testResumeKeepsLoggingOptions() throws {
        var started = PretrainOptions()
        started.logEvery = 3; started.saveEvery = 9; started.evalEvery = 27; started.lr = 1e-3
        try JSONEncoder().encode(started).write(to: URL(fileURLWithPath: dir + "/config.json"))
        var now = started
        now.logEvery = 50; now.saveEvery = 0; now.evalEvery = 100
        let o = try RecipeRunner.loggingOptions(of: dir + "/config.json", into: now)
        XCTAssertEqual(o, started)
        XCTAssertThrowsError(try RecipeRunner.loggingOptions(of: dir + "/none.json", into: now)) {
            XCTAssertTrue("\($0)".contains("none.json"), "\($0)")
        }
    }
}
