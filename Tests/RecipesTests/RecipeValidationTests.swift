// Recipe checking: every mistake is found before any job starts, and the error names the
// file, the line and the key (and its table). Also: key mapping, ordering, job hashing.

import Datasets
import Evaluators
import Foundation
@testable import Recipes
import TestSupport
import XCTest

final class RecipeValidationTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
        // a data root with a corpus, a BLiMP paradigm and SQuAD files (only their existence matters here)
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/data/blimp/data", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir + "/data/squad", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir + "/data/pararel", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir + "/data/counterfact", withIntermediateDirectories: true)
        try "[]".write(toFile: dir + "/data/counterfact/counterfact-edit.json", atomically: true, encoding: .utf8)
        try "{}\n".write(toFile: dir + "/data/blimp/data/a.jsonl", atomically: true, encoding: .utf8)
        try "{}".write(toFile: dir + "/data/squad/train-v1.1.json", atomically: true, encoding: .utf8)
        try "{}".write(toFile: dir + "/data/squad/dev-v1.1.json", atomically: true, encoding: .utf8)
        try "Some text.\n".write(toFile: dir + "/corpus.txt", atomically: true, encoding: .utf8)
    }

    /// A valid recipe; `variants` and `evaluators` are appended as written (line 9 is the first of them).
    func recipe(_ tail: String, pretrain: String = "preset = \"tiny\"") -> String {
        """
        seeds = [0, 1]
        data-dir = "\(dir)/data"
        [pretrain]
        \(pretrain)
        corpus = ["\(dir)/corpus.txt"]
        tokens = 100000
        [variants.nodrop]
        dropout = 0.0
        \(tail)
        """
    }

    func load(_ text: String, name: String = "r") throws -> Recipe {
        let path = dir + "/\(name).toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return try Recipe(path: path)
    }

    /// The error of loading `text`; asserts it starts with `<path>:<line>: ` and contains every needle.
    func assertError(_ text: String, line: Int, _ needles: [String], file: StaticString = #filePath, at: UInt = #line) {
        XCTAssertThrowsError(try load(text), file: file, line: at) { e in
            let msg = "\(e)"
            XCTAssertTrue(msg.hasPrefix("\(dir)/r.toml:\(line): "), "expected line \(line): \(msg)", file: file, line: at)
            for n in needles { XCTAssertTrue(msg.contains(n), "should mention '\(n)': \(msg)", file: file, line: at) }
        }
    }

    func testValidRecipeResolvesJobs() throws {
        let text = recipe("""
            [variants.drop]
            label = "Dropout 0.1"
            dropout = 0.1
            [variants.early]
            label = "Early dropout"
            dropout = 0.1
            early-dropout-fraction = 0.25
            [evaluators.squad]
            max-seq-len = 256
            epochs = 1
            [evaluators.blimp]
            limit = 5
            """)
        let r = try load(text)
        // variants and evaluators in the order written, jobs seed-major
        XCTAssertEqual(r.variants.map(\.id), ["nodrop", "drop", "early"])
        XCTAssertEqual(r.variants.map(\.label), ["nodrop", "Dropout 0.1", "Early dropout"])
        XCTAssertEqual(r.evaluators.map(\.evaluator.name), ["squad", "blimp"])
        XCTAssertEqual(r.jobs.count, 2 * 3 * 3)
        XCTAssertEqual(r.jobs.prefix(4).map(\.name), ["pretrain/nodrop/seed0", "squad/nodrop/seed0", "blimp/nodrop/seed0", "pretrain/drop/seed0"])
        XCTAssertEqual(r.baseline, "nodrop")
        // overrides on top of [pretrain] and the defaults; early dropout as a fraction of the 195 steps
        let early = r.variant("early")!.options
        XCTAssertEqual(early.preset, "tiny"); XCTAssertEqual(early.tokens, 100_000); XCTAssertEqual(early.dropout, 0.1)
        XCTAssertEqual(early.earlyDropoutSteps, Int((0.25 * Double(100_000 / (32 * 128))).rounded()))
        XCTAssertEqual(r.variant("nodrop")!.options.earlyDropoutSteps, nil)
        // evaluator options: flattened keys, the job's seed, the recipe's data root
        let squad = try JSONSerialization.jsonObject(with: r.jobs[1].config) as! [String: Any]
        XCTAssertEqual((squad["features"] as! [String: Any])["maxSeqLen"] as? Int, 256)
        XCTAssertEqual(squad["seed"] as? Int, 0)
        XCTAssertEqual(squad["dataDir"] as? String, dir + "/data")
        // distinct, stable hashes; an evaluator's depends on its pretraining
        XCTAssertEqual(Set(r.jobs.map(\.hash)).count, r.jobs.count)
        XCTAssertEqual(try load(text).jobs.map(\.hash), r.jobs.map(\.hash))
        let other = try load(recipe("[evaluators.squad]\nmax-seq-len = 256\nepochs = 1", pretrain: "preset = \"mini\""))
        XCTAssertNotEqual(other.jobs[1].hash, r.jobs[1].hash, "a different pretraining changes the evaluator's hash")
    }

    /// The concept-edit evaluators: flattened keys reach their nested options, the recipe sets the
    /// data root and seed, bad values and models kept are errors naming the key.
    func testEditEvaluators() throws {
        let r = try load(recipe("[evaluators.lora]\nranks = [8, 2]\nlimit = 40\nepochs = 2\nconcept = [\"france\"]\n[evaluators.bmask]\nbeta = 1e-4"))
        XCTAssertEqual(r.evaluators.map(\.evaluator.name), ["lora", "bmask"])
        let lora = try JSONSerialization.jsonObject(with: r.jobs[1].config) as! [String: Any]
        let edit = lora["edit"] as! [String: Any], probes = edit["probes"] as! [String: Any]
        XCTAssertEqual(lora["ranks"] as? [Int], [8, 2]); XCTAssertEqual(edit["epochs"] as? Int, 2)
        XCTAssertEqual(edit["concept"] as? [String], ["france"]); XCTAssertEqual(edit["lr"] as? Double ?? 0, 5e-4, accuracy: 1e-9)   // a Float option: u32 * 5e-4 = 3e-11 off
        XCTAssertEqual(probes["limit"] as? Int, 40); XCTAssertEqual(probes["dataDir"] as? String, dir + "/data")
        assertError(recipe("[evaluators.lora]\nranks = [4, 0]"), line: 10, ["key 'ranks' in [evaluators.lora]", "--ranks must"])
        assertError(recipe("[evaluators.reft]\nplaces = [\"1:head\"]"), line: 10, ["key 'places' in [evaluators.reft]"])
        assertError(recipe("[evaluators.bmask]\nheld-out = 1.5"), line: 10, ["key 'held-out' in [evaluators.bmask]", "(0, 1)"])
        assertError(recipe("[evaluators.ft]\nsave-edited = \"x\""), line: 10, ["key 'save-edited' in [evaluators.ft]", "recipes keep results"])
        // "unset": an optional option's nil (bmask's min-steps defaults to 300); a required one refuses it
        func bmaskEdit(_ table: String) throws -> [String: Any] {
            let r = try load(recipe("[evaluators.bmask]\n" + table))
            return (try JSONSerialization.jsonObject(with: r.jobs[1].config) as! [String: Any])["edit"] as! [String: Any]
        }
        XCTAssertEqual(try bmaskEdit("")["minSteps"] as? Int, 300)
        XCTAssertEqual(try bmaskEdit("min-steps = 50")["minSteps"] as? Int, 50)
        XCTAssertNil(try bmaskEdit("min-steps = \"unset\"")["minSteps"])
        assertError(recipe("[evaluators.bmask]\nepochs = \"unset\""), line: 10, ["key 'epochs' in [evaluators.bmask]", "expected an integer"])
    }

    func testUnknownEvaluator() {
        assertError(recipe("[evaluators.knowledge-neurons]\nlayers = 2"), line: 9,
                    ["unknown evaluator 'knowledge-neurons'", "known: mlm, blimp, squad"])
        assertError(recipe("[evaluators.blimpp]"), line: 9, ["unknown evaluator 'blimpp'", "did you mean 'blimp'"])
    }

    func testUnknownPreset() {
        assertError(recipe("", pretrain: "preset = \"huge\""), line: 4, ["key 'preset' in [pretrain]", "unknown preset 'huge'"])
        assertError(recipe("preset = \"large\""), line: 9, ["key 'preset' in [variants.nodrop]", "unknown preset 'large'"])
    }

    func testUnknownOption() {
        assertError(recipe("dropuot = 0.1"), line: 9, ["unknown key 'dropuot' in [variants.nodrop]", "did you mean 'dropout'"])
        assertError(recipe("", pretrain: "seqLen = 64"), line: 4, ["unknown key 'seqLen' in [pretrain]", "did you mean 'seq-len'"])
        assertError(recipe("[evaluators.squad]\nepochs = 1\nmax-seq-lenn = 3"), line: 11,
                    ["unknown key 'max-seq-lenn' in [evaluators.squad]", "did you mean 'max-seq-len'"])
        assertError(recipe("[evaluators.squad]\nfeatures = { doc-strid = 3 }"), line: 10, ["unknown key 'doc-strid'"])
        assertError("seeds = [0]\nvariant = 3\n[variants.a]\n", line: 2, ["unknown key 'variant' at top level", "did you mean 'variants'"])
        assertError(recipe("seed = 3"), line: 9, ["key 'seed' in [variants.nodrop]", "set by the recipe runner"])
        assertError(recipe("[evaluators.kn]\nseed = 3"), line: 10, ["key 'seed' in [evaluators.kn]", "set by the recipe runner"])
        assertError(recipe("[evaluators.lens]\nlimt = 3"), line: 10, ["unknown key 'limt' in [evaluators.lens]", "did you mean 'limit'"])
    }

    func testBadValues() {
        assertError(recipe("[variants.b]\ndropout = \"lots\""), line: 10, ["key 'dropout' in [variants.b]", "expected a number"])
        assertError(recipe("[variants.b]\ndropout = 1.5"), line: 10, ["key 'dropout' in [variants.b]", "--dropout must be in [0, 1)"])
        assertError(recipe("seq-len = 4000"), line: 9, ["key 'seq-len'", "8...512"])
        assertError(recipe("decay = \"sideways\""), line: 9, ["key 'decay'", "'sideways'"])
        assertError(recipe("[evaluators.blimp]\nlimit = 0"), line: 10, ["key 'limit' in [evaluators.blimp]", "--limit must be in 1..."])
        assertError(recipe("[evaluators.squad]\nmax-seq-len = 1024"), line: 10, ["key 'max-seq-len' in [evaluators.squad]", "8...512, got 1024"])
        assertError(recipe("[evaluators.trace]\nlimit = 0"), line: 10, ["key 'limit' in [evaluators.trace]", "at least 1"])
        assertError(recipe("[evaluators.kn]\nthreshold = 2"), line: 10, ["key 'threshold' in [evaluators.kn]", "(0, 1]"])
        assertError(recipe("[evaluators.ig]\nsite = \"ffn.post\""), line: 10, ["key 'site' in [evaluators.ig]", "ffn.pre"])
        assertError(recipe("[evaluators.interchange]\npositions = [\"all\"]"), line: 10, ["key 'positions' in [evaluators.interchange]"])
        assertError(recipe("[evaluators.memit]\ncov-samples = 0"), line: 10, ["key 'cov-samples' in [evaluators.memit]", "at least 1"])
        assertError(recipe("[evaluators.rome]\nsplit = \"test\""), line: 10, ["key 'split' in [evaluators.rome]", "edit, train, val"])
        assertError(recipe("[variants.b]\ndropout = 0.1\nearly-dropout-fraction = 2"), line: 11, ["key 'early-dropout-fraction'", "(0, 1]"])
        assertError(recipe("[variants.same]\ndropout = 0.0"), line: 9, ["'same'", "same pretraining"])
        assertError(recipe("").replacingOccurrences(of: "seeds = [0, 1]", with: "seeds = [0, 1]\nbaseline = \"none\""),
                    line: 2, ["key 'baseline'", "no variant 'none'"])
        assertError(recipe("").replacingOccurrences(of: "seeds = [0, 1]", with: "seeds = [0, -1]"), line: 1, ["key 'seeds'"])
        assertError(recipe("x = = 1"), line: 9, [])      // TOML syntax error: TOMLKit's position
        assertError(recipe("[variants.b]\ndropout = nan"), line: 10, ["key 'dropout' in [variants.b]", "not a finite number"])
    }

    func testMissingDatasets() throws {
        assertError(recipe("").replacingOccurrences(of: "\(dir)/corpus.txt", with: "\(dir)/nocorpus.txt"), line: 5,
                    ["key 'corpus' in [pretrain]", "missing dataset", "nocorpus.txt"])
        assertError(recipe("vocab = \"\(dir)/novocab.txt\""), line: 9, ["key 'vocab' in [variants.nodrop]", "novocab.txt"])
        assertError(recipe("[evaluators.squad]\ndev = \"\(dir)/nodev.json\""), line: 10,
                    ["key 'dev' in [evaluators.squad]", "missing dataset", "nodev.json"])
        assertError(recipe("[evaluators.consistency]\nprobes = \"\(dir)/none.jsonl\""), line: 10,
                    ["key 'probes' in [evaluators.consistency]", "none.jsonl"])
        try FileManager.default.removeItem(atPath: dir + "/data/pararel")
        assertError(recipe("[evaluators.lens]"), line: 2, ["key 'data-dir' at top level", "[evaluators.lens]", "pararel"])
        try FileManager.default.removeItem(atPath: dir + "/data/blimp/data/a.jsonl")
        assertError(recipe("[evaluators.blimp]"), line: 2, ["key 'data-dir' at top level", "[evaluators.blimp]", "no .jsonl files"])
        assertError(recipe("").replacingOccurrences(of: "\(dir)/data", with: "\(dir)/nowhere"), line: 2,
                    ["key 'data-dir'", "nowhere", "not a directory"])
    }

    /// Through the command line: a one-line error, exit status non-zero, no job directory.
    func testCommandLineErrorWritesNothing() throws {
        let path = dir + "/bad.toml"
        try recipe("[evaluators.neurons]").write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runDroplab(["recipe", "run", path, "--root", dir + "/ck"])
        assertOneLineError(r, contains: ["bad.toml:9:", "unknown evaluator 'neurons'"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/ck"), "no job directory before the recipe is valid")
        let report = try runDroplab(["report", path, "--root", dir + "/ck", "--out", dir + "/reports"])
        assertOneLineError(report, contains: ["bad.toml:9:"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/reports"))
        assertOneLineError(try runDroplab(["recipe", "run", dir + "/missing.toml"]), contains: ["missing.toml", "no such file"])
        // a mistyped recipe name (as `recipe list` names them): the closest one suggested
        assertOneLineError(try runDroplab(["recipe", "run", "quik", "--dry-run"], cwd: TestData.repoRoot),
                           contains: ["quik: no such file", "did you mean 'quick' (recipes/quick.toml)?"])
    }

    /// A job's identity: the logging options (log-every, save-every, eval-every) change no hash
    /// and the job.json keeps them; any other setting changes the pretraining's hash and its
    /// evaluators'; the datasets' contents change the hashes of the jobs that read them only.
    func testJobIdentity() throws {
        let evaluators = "[evaluators.blimp]\nlimit = 5\n[evaluators.squad]\nepochs = 1"
        let plain = try load(recipe(evaluators))
        let logged = try load(recipe(evaluators, pretrain: "preset = \"tiny\"\nlog-every = 3\nsave-every = 7\neval-every = 11"))
        XCTAssertEqual(logged.jobs.map(\.hash), plain.jobs.map(\.hash), "logging options are not part of the identity")
        let config = try JSONSerialization.jsonObject(with: logged.jobs[0].config) as! [String: Any]
        XCTAssertEqual(config["logEvery"] as? Int, 3, "the job's configuration keeps them")
        let other = try load(recipe(evaluators, pretrain: "preset = \"tiny\"\nwarmup = 0.1"))
        XCTAssertTrue(zip(other.jobs, plain.jobs).allSatisfy { $0.hash != $1.hash }, "a setting changes every job of the pretraining")
        // the squad evaluator's own logging option
        let squadLogged = try load(recipe(evaluators + "\nlog-every = 2"))
        XCTAssertEqual(squadLogged.jobs.map(\.hash), plain.jobs.map(\.hash))

        // data: the corpus reaches every job; a BLiMP file only the blimp jobs
        try "Some other text.\n".write(toFile: dir + "/corpus.txt", atomically: true, encoding: .utf8)
        let corpusChanged = try load(recipe(evaluators))
        XCTAssertTrue(zip(corpusChanged.jobs, plain.jobs).allSatisfy { $0.hash != $1.hash })
        try "{}\n{}\n".write(toFile: dir + "/data/blimp/data/a.jsonl", atomically: true, encoding: .utf8)
        let blimpChanged = try load(recipe(evaluators))
        for (a, b) in zip(blimpChanged.jobs, corpusChanged.jobs) {
            XCTAssertEqual(a.hash != b.hash, a.kind == "blimp", a.name)
        }
        XCTAssertEqual(blimpChanged.jobs[0].data, [dir + "/corpus.txt"])
        XCTAssertEqual(blimpChanged.jobs[1].data, [dir + "/data/blimp/data"])
        XCTAssertEqual(blimpChanged.jobs[2].data, [dir + "/data/squad/train-v1.1.json", dir + "/data/squad/dev-v1.1.json"])

        // the seeds are the recipe's: init, data and dropout seed alike
        assertError(recipe("dropout-seed = 3"), line: 9, ["key 'dropout-seed' in [variants.nodrop]", "set by the recipe runner"])
        assertError(recipe("", pretrain: "preset = \"tiny\"\ninit-seed = 1"), line: 5, ["key 'init-seed' in [pretrain]", "recipe's seeds"])
        XCTAssertNil(plain.variants[0].options.dataSeed)
    }

    /// Digests are cached by path, size and modification time: an unchanged file is not read
    /// again (a content change that keeps both goes unseen, by design), a touched one is; the
    /// cache persists through `save` and an unreadable cache is an empty one.
    func testDataDigestCache() throws {
        let file = dir + "/big.bin", cache = dir + "/cache/digests.json"
        try Data("abcdef".utf8).write(to: URL(fileURLWithPath: file))
        let fm = FileManager.default
        let mtime = Date(timeIntervalSince1970: 1_700_000_000)   // whole seconds: set back exactly
        try fm.setAttributes([.modificationDate: mtime], ofItemAtPath: file)
        let d = DataDigests(cacheFile: cache)
        let first = try d.digest(file)
        XCTAssertEqual(first, "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721")   // sha256sum of "abcdef"
        try Data("ABCDEF".utf8).write(to: URL(fileURLWithPath: file))
        try fm.setAttributes([.modificationDate: mtime], ofItemAtPath: file)
        XCTAssertEqual(try d.digest(file), first, "same path, size and mtime: the cached digest")
        try d.save()
        XCTAssertEqual(try DataDigests(cacheFile: cache).digest(file), first, "the cache persists")
        try fm.setAttributes([.modificationDate: mtime.addingTimeInterval(1)], ofItemAtPath: file)
        let fresh = DataDigests(cacheFile: cache)
        XCTAssertEqual(try fresh.digest(file), SHA256.hex(Data("ABCDEF".utf8)), "a touched file is read again")
        // directories: sorted "name digest" lines
        try fm.createDirectory(atPath: dir + "/d/sub", withIntermediateDirectories: true)
        try "x".write(toFile: dir + "/d/b.txt", atomically: true, encoding: .utf8)
        try "y".write(toFile: dir + "/d/sub/a.txt", atomically: true, encoding: .utf8)
        let sub = SHA256.hex(Data("a.txt \(SHA256.hex(Data("y".utf8)))\n".utf8))
        XCTAssertEqual(try fresh.digest(dir + "/d"), SHA256.hex(Data("b.txt \(SHA256.hex(Data("x".utf8)))\nsub \(sub)\n".utf8)))
        XCTAssertThrowsError(try fresh.digest(dir + "/none")) { XCTAssertTrue("\($0)".contains("none: does not exist"), "\($0)") }
        try "garbage".write(toFile: cache, atomically: true, encoding: .utf8)
        XCTAssertEqual(try DataDigests(cacheFile: cache).digest(dir + "/d/b.txt"), SHA256.hex(Data("x".utf8)))
    }

    func testSourceIndexFindsKeys() {
        let idx = SourceIndex(text: """
            a = 1 # comment with = sign
            s = \"\"\"
            x = 2
            \"\"\"
            arr = [
              "y = 3",
            ]
            [t.u]
            "quoted.key" = 4
            b.c = 5
            [[runs]]
            k = 6
            [[runs]]
            k = 7
            """)
        XCTAssertEqual(idx.line(["a"]), 1)
        XCTAssertNil(idx.keyLines[["x"]], "inside a multi-line string")
        XCTAssertNil(idx.keyLines[["y"]], "inside a multi-line array")
        XCTAssertEqual(idx.line(["t", "u"]), 8)
        XCTAssertEqual(idx.line(["t", "u", "quoted.key"]), 9)
        XCTAssertEqual(idx.line(["t", "u", "b", "c"]), 10)
        XCTAssertEqual(idx.line(["runs", "1", "k"]), 14)
        XCTAssertEqual(idx.line(["t", "u", "nothing"]), 8, "falls back to the table")
    }
}
