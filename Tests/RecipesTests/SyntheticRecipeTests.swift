// Recipes with a [synthetic] corpus: recipes/synthetic.toml loads without its data (the runner
// generates it), its jobs read the generated corpus, probes and CounterFact cases, the
// generator's settings are part of the pretraining hashes, and `recipe run` generates the
// corpus before the first job, finds it up to date afterwards and refuses to overwrite it with
// other settings.

import Autograd
import Datasets
import Foundation
import Evaluators
@testable import Recipes
import TestSupport
import XCTest

final class SyntheticRecipeTests: XCTestCase {
    func json(_ d: Data) throws -> [String: Any] { try JSONSerialization.jsonObject(with: d) as! [String: Any] }

    func testShippedRecipeReadsItsGeneratedData() throws {
        let r = try Recipe(path: TestData.repoRoot + "/recipes/synthetic.toml")
        let out = try XCTUnwrap(r.generated?.out)
        XCTAssertEqual(r.variants.map(\.options.dropout), [0, 0.1, 0.15, 0.3, 0.1])
        XCTAssertEqual(r.variants.map(\.options.preset), Array(repeating: "mini", count: 5))
        // early dropout: the first 15% of the 2,988 steps the corpus gives
        XCTAssertEqual(r.variants.map(\.options.earlyDropoutSteps), [nil, nil, nil, nil, 448])
        XCTAssertEqual(r.seeds, [0, 1, 2])
        XCTAssertEqual(r.learnedThreshold, 50)
        XCTAssertEqual(r.evaluators.map(\.evaluator.name).sorted(),
                       ["acquisition", "bmask", "consistency", "ft", "ig", "interchange", "kn", "lens", "lora", "memit", "mend", "reft", "rome", "trace"])
        XCTAssertEqual(r.jobs.count, 5 * 3 * 15)
        for job in r.jobs {
            XCTAssertEqual(job.pretrain.corpus, [out + "/corpus.txt"], job.name)
            let c = try json(job.config)
            switch job.kind {
            case "pretrain": continue
            case "rome", "memit":
                let edit = job.kind == "rome" ? c : c["edit"] as! [String: Any]
                XCTAssertEqual(edit["dataDir"] as? String, out, job.name)
                XCTAssertEqual(edit["corpus"] as? [String], [out + "/corpus.txt"], job.name)
            case "acquisition":
                XCTAssertEqual(c["probes"] as? String, out + "/probes.jsonl", job.name)
            case "bmask", "ft", "lora", "reft":
                XCTAssertEqual(((c["edit"] as! [String: Any])["probes"] as! [String: Any])["probes"] as? String, out + "/probes.jsonl", job.name)
            default:
                XCTAssertEqual((c["source"] as! [String: Any])["probes"] as? String, out + "/probes.jsonl", job.name)
                // where facts are stored is measured on the facts the model knows
                XCTAssertEqual((c["source"] as! [String: Any])["knownOnly"] as? Bool, ["lens", "ig", "kn", "trace", "interchange"].contains(job.kind) ? true : nil, job.name)
            }
        }
    }

    /// A one-variant recipe with a small [synthetic] corpus, in `dir`.
    func recipe(_ dir: String, repetitions: Int = 40, pretrain: String = "") -> String {
        """
        seeds = [0]
        [synthetic]
        out = "\(dir)/syn"
        facts = 24
        relations = 3
        objects = 4
        templates = 5
        repetitions = \(repetitions)
        filler = 0.3
        [pretrain]
        preset = "tiny"
        tokens = 1_000_000
        seq-len = 32
        batch = 16
        val-fraction = 0.1
        val-seq-len = 32
        val-sequences = 16
        \(pretrain)
        [variants.nodrop]
        dropout = 0.0
        [evaluators.consistency]
        [evaluators.rome]
        limit = 2
        trace-cases = 2
        cov-samples = 100
        cov-seq-len = 16
        steps = 2
        """
    }

    func testRunGeneratesTheCorpusFirst() throws {
        let dir = try temporaryDirectory(self)
        let path = dir + "/syn.toml", root = dir + "/ck"
        try recipe(dir).write(toFile: path, atomically: true, encoding: .utf8)
        let fm = FileManager.default

        let dry = try runDroplab(["recipe", "run", path, "--dry-run", "--root", root])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("synthetic corpus: \(dir)/syn (generated before the first job runs)"), dry.stdout)
        XCTAssertFalse(fm.fileExists(atPath: dir + "/syn"), "--dry-run writes nothing")

        let run = try runDroplab(["recipe", "run", path, "--root", root])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("synthetic corpus \(dir)/syn: written (24 facts"), run.stderr)
        let r = try Recipe(path: path)
        let runner = RecipeRunner(recipe: r, root: root, log: { _ in })
        XCTAssertTrue(r.jobs.allSatisfy { runner.state($0) == .done })
        let consistency = try json(Data(contentsOf: URL(fileURLWithPath: runner.directory(r.jobs[1]) + "/result.json")))
        XCTAssertEqual(consistency["probes"] as? Int, 24 * 5)
        XCTAssertEqual((consistency["perSplit"] as? [String: Any])?.keys.sorted(), ["held-out", "train"])
        XCTAssertEqual((consistency["validity"] as? [[String: Any]])?.map { $0["id"] as? String }, ["consistency.degenerate", "consistency.known_facts"],
                       "every result.json carries its checks beside its own keys")
        let rome = try json(Data(contentsOf: URL(fileURLWithPath: runner.directory(r.jobs[2]) + "/result.json")))
        XCTAssertEqual(rome["cases"] as? Int, 2); XCTAssertEqual(rome["casesDroppedMultiPiece"] as? Int, 0)   // its CounterFact cases
        // provenance: the generated files' hashes
        let done = try json(Data(contentsOf: URL(fileURLWithPath: runner.directory(r.jobs[0]) + "/done.json")))
        XCTAssertNotNil((done["data"] as? [String: Any])?["\(dir)/syn/corpus.txt"], "\(done)")

        // done: nothing generated or run again; an evaluator to run finds the corpus up to date
        let again = try runDroplab(["recipe", "run", path, "--root", root])
        XCTAssertTrue(again.stdout.contains("0 run, 3 already done"), again.stdout)
        XCTAssertFalse(again.stderr.contains("synthetic corpus \(dir)"), again.stderr)
        try fm.removeItem(atPath: runner.directory(r.jobs[1]))
        let one = try runDroplab(["recipe", "run", path, "--root", root])
        XCTAssertTrue(one.stderr.contains("synthetic corpus \(dir)/syn: up to date"), one.stderr)

        // a job that fails does not stop the run: with the checkpoint damaged both evaluators fail,
        // the second is still tried, and the command fails at the end naming both
        let ckpt = runner.directory(r.jobs[0]) + "/last.h5"
        let weights = try Data(contentsOf: URL(fileURLWithPath: ckpt))
        try Data("not an HDF5 file".utf8).write(to: URL(fileURLWithPath: ckpt))
        for j in r.jobs.dropFirst() { try fm.removeItem(atPath: runner.directory(j)) }
        let broken = try runDroplab(["recipe", "run", path, "--root", root])
        XCTAssertNotEqual(broken.status, 0)
        for j in r.jobs.dropFirst() {
            XCTAssertTrue(broken.stderr.contains("\(j.name): failed (\(runner.directory(j))): "), broken.stderr)
            XCTAssertNotEqual(runner.state(j), .done)
        }
        XCTAssertTrue(broken.stderr.contains("2 of 3 jobs failed: consistency/nodrop/seed0, rome/nodrop/seed0"), broken.stderr)
        try weights.write(to: URL(fileURLWithPath: ckpt))

        // other generator settings: new jobs, and the corpus directory is not overwritten
        try recipe(dir, repetitions: 41).write(toFile: path, atomically: true, encoding: .utf8)
        let changed = try Recipe(path: path)
        XCTAssertNotEqual(changed.jobs[0].hash, r.jobs[0].hash, "the generator's settings are part of the pretraining hash")
        let refused = try runDroplab(["recipe", "run", path, "--root", root])
        assertOneLineError(refused, contains: ["syn.toml:3: key 'out' in [synthetic]", "other settings (repetitions 40 -> 41)"])

        // the corpus is the recipe's: [pretrain] cannot name another
        try recipe(dir, pretrain: "corpus = [\"x.txt\"]").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Recipe(path: path)) { e in
            XCTAssertTrue("\(e)".contains("key 'corpus' in [pretrain]: is set by the recipe runner (the recipe's [synthetic] corpus)"), "\(e)")
        }
        try recipe(dir).replacingOccurrences(of: "facts = 24", with: "facts = 0").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Recipe(path: path)) { e in
            XCTAssertTrue("\(e)".contains("syn.toml:4: key 'facts' in [synthetic]: bad value: --facts must be in 1...1000000, got 0"), "\(e)")
        }
    }
}

/// Recipes with a [facts] corpus (`droplab corpus facts`): the pretrainings read its corpus,
/// vocabulary and val-fraction, the probe evaluators its probes, ROME keeps the data root's
/// CounterFact; its settings are part of the pretraining hashes; a recipe cannot set what it sets.
final class FactsRecipeTests: XCTestCase {
    func recipe(_ dir: String, facts: Int = 50, extra: String = "", pretrain: String = "") -> String {
        """
        seeds = [0]
        \(extra)
        [facts]
        out = "\(dir)/facts"
        facts = \(facts)
        exposures = [0, 4]
        [pretrain]
        preset = "tiny"
        tokens = 1_000_000
        \(pretrain)
        [variants.nodrop]
        dropout = 0.0
        [evaluators.consistency]
        [evaluators.rome]
        """
    }

    func load(_ dir: String, _ text: String) throws -> Recipe {
        try text.write(toFile: dir + "/facts.toml", atomically: true, encoding: .utf8)
        return try Recipe(path: dir + "/facts.toml")
    }

    func testJobsReadTheGeneratedCorpusVocabularyAndProbes() throws {
        let dir = try temporaryDirectory(self)
        let r = try load(dir, recipe(dir))
        let out = dir + "/facts"
        XCTAssertEqual(r.generated?.table, "facts")
        let pre = try XCTUnwrap(r.jobs.first { $0.kind == "pretrain" })
        XCTAssertEqual(pre.pretrain.corpus, [out + "/corpus.txt"])
        XCTAssertEqual(pre.pretrain.vocab, out + "/vocab.txt")
        XCTAssertEqual(pre.pretrain.valFraction, FactsCorpusOptions().valFraction)
        XCTAssertNil(pre.pretrain.salient, "salient masking only when asked for")
        // salient-mask-rate: the corpus's statements' objects are the salient words
        let salient = try XCTUnwrap(try load(dir, recipe(dir, pretrain: "salient-mask-rate = 0.5")).jobs.first { $0.kind == "pretrain" })
        XCTAssertEqual(salient.pretrain.salient, out + "/salient.jsonl")
        XCTAssertEqual(salient.pretrain.salientMaskRate, 0.5)
        XCTAssertNotEqual(salient.hash, pre.hash)
        let c = try JSONSerialization.jsonObject(with: r.jobs.first { $0.kind == "consistency" }!.config) as! [String: Any]
        XCTAssertEqual((c["source"] as! [String: Any])["probes"] as? String, out + "/probes.jsonl")
        let rome = try JSONSerialization.jsonObject(with: r.jobs.first { $0.kind == "rome" }!.config) as! [String: Any]
        XCTAssertNotEqual(rome["dataDir"] as? String, out, "no CounterFact cases in a facts corpus: rome keeps the data root's")
        XCTAssertEqual(rome["probes"] as? String, out + "/probes.jsonl", "its cases: the corpus's facts")
        XCTAssertEqual(rome["corpus"] as? [String], [out + "/corpus.txt"], "its key statistics: the model's own text")
        // the generator's settings are the pretrainings' parent: other settings, other jobs
        let other = try load(dir, recipe(dir, facts: 60))
        XCTAssertNotEqual(other.jobs.first { $0.kind == "pretrain" }!.hash, pre.hash)
    }

    /// recipes/facts.toml: pilot 4's settings on the pilots' corpus, one epoch, salient masking of
    /// the statements' objects, three variants and three seeds, acquisition and the study's
    /// battery on every run, the probe evaluators and the editors on the corpus's probes. (Its
    /// pretrainings run in bf16, which needs AVX512-BF16; the recipe loads on any CPU.)
    func testShippedFactsRecipe() throws {
        let r = try Recipe(path: TestData.repoRoot + "/recipes/facts.toml")
        let out = try XCTUnwrap(r.generated?.out)
        XCTAssertEqual(r.generated?.table, "facts")
        XCTAssertEqual(r.variants.map(\.options.dropout), [0, 0.1, 0.1])
        XCTAssertEqual(r.variants.map(\.options.earlyDropoutSteps), [nil, nil, 1526])   // 15% of 10,171 steps, rounded
        for v in r.variants {
            XCTAssertEqual(v.options.preset, "mini")
            XCTAssertEqual(v.options.tokens, 41_663_389, "one epoch of the corpus's training part")
            XCTAssertEqual(v.options.salient, out + "/salient.jsonl")
            XCTAssertEqual(v.options.salientMaskRate, 1)
            XCTAssertEqual(v.options.precision, .bf16)
        }
        let battery = ["pretrain", "acquisition", "mlm", "blimp", "squad", "consistency", "lens", "ig", "kn", "trace", "interchange",
                       "bmask", "ft", "lora", "reft", "mend", "rome", "memit"]
        XCTAssertEqual(r.seeds, [0, 1, 2])
        XCTAssertEqual(r.jobs.count, battery.count * 3 * 3)
        XCTAssertEqual(Array(r.jobs.prefix(battery.count).map(\.kind)), battery)
        let acq = try JSONSerialization.jsonObject(with: r.jobs[1].config) as! [String: Any]
        XCTAssertEqual(acq["probes"] as? String, out + "/probes.jsonl")
        XCTAssertEqual(acq["perGroup"] as? Int, 1000)
        func config(_ kind: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: XCTUnwrap(r.jobs.first { $0.kind == kind }).config) as! [String: Any]
        }
        let lens = try config("lens")["source"] as? [String: Any]
        XCTAssertEqual(lens?["probes"] as? String, out + "/probes.jsonl"); XCTAssertEqual(lens?["knownOnly"] as? Bool, true)
        XCTAssertEqual(try config("rome")["probes"] as? String, out + "/probes.jsonl", "edits the corpus's facts, not CounterFact's")
        XCTAssertEqual(try config("rome")["knownOnly"] as? Bool, true, "edits facts the model knows")
    }

    func testWhatTheCorpusSetsCannotBeSetAgain() throws {
        let dir = try temporaryDirectory(self)
        for (pretrain, key) in [("vocab = \"v.txt\"", "vocab"), ("corpus = [\"c.txt\"]", "corpus"), ("val-fraction = 0.1", "val-fraction"),
                                ("salient = \"s.jsonl\"", "salient")] {
            XCTAssertThrowsError(try load(dir, recipe(dir, pretrain: pretrain))) {
                XCTAssertTrue("\($0)".contains("key '\(key)'") && "\($0)".contains("[facts]"), "\($0)")
            }
        }
        XCTAssertThrowsError(try load(dir, recipe(dir, extra: "[synthetic]\nout = \"\(dir)/syn\""))) {
            XCTAssertTrue("\($0)".contains("[synthetic] and [facts] both generate the corpus"), "\($0)")
        }
    }
}
