// `droplab corpus synth`: the same settings give the same bytes (pinned), the files are in the
// formats their readers take (user probes, CounterFact cases), held-out templates never reach
// the corpus while every training template does, every object is one word piece of a vocabulary
// learned from the corpus itself, and a directory holding other data is never overwritten. End
// to end: a tiny model pretrained on a small generated corpus, whose probes eval consistency reads.

@testable import Datasets
@testable import Evaluators
import Foundation
import TestSupport
import Text
import Training
import XCTest

final class SyntheticFactsTests: XCTestCase {
    /// A small world: 24 facts (8 subjects x 3 relations, 4 objects each), 5 templates (2 held out).
    static func small(_ out: String) -> SynthOptions {
        var o = SynthOptions()
        o.facts = 24; o.relations = 3; o.objects = 4; o.templates = 5; o.heldOutTemplates = 2
        o.repetitions = 40; o.filler = 0.3; o.out = out
        return o
    }

    static let quiet: (String) -> Void = { _ in }

    func read(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    func testSameSettingsGiveTheSameBytes() throws {
        let dir = try temporaryDirectory(self)
        let a = Self.small(dir + "/a"), b = Self.small(dir + "/b")
        XCTAssertEqual(try SyntheticFacts.write(a, log: Self.quiet).status, .written)
        XCTAssertEqual(try SyntheticFacts.write(b, log: Self.quiet).status, .written)
        for f in SyntheticFacts.files + [SyntheticFacts.manifestFile] {
            XCTAssertEqual(try read(a.out + "/" + f), try read(b.out + "/" + f), f)
        }
        // pinned: a change here changes every synthetic study's data (update only on purpose)
        let m = try JSONDecoder().decode(SyntheticManifest.self, from: read(a.out + "/" + SyntheticFacts.manifestFile))
        XCTAssertEqual(m.files, [
            "corpus.txt": "d20235f228a23e9daca228c46d9817bb4ee2b11f2c8834d6f79c1bac6ff9199b",
            "probes.jsonl": "d30031f1026cee6917d74f1bdd2f0deeb3dcbc23bac848d5ede3ceccc87f0edb",
            "counterfact/counterfact-edit.json": "3ba57871e5dd5134ba78214bdeb10b660098d88d62d3f34eb6f9cf69a4bf34ec",
        ])
        XCTAssertEqual(m.counts["facts"], 24); XCTAssertEqual(m.counts["subjects"], 8); XCTAssertEqual(m.counts["statements"], 24 * 40)
        XCTAssertEqual(m.counts["probes"], 24 * 5); XCTAssertEqual(m.counts["held_out_probes"], 24 * 2)
        // a corpus made by an older generator is made again (same settings, same files otherwise)
        var manifest = try JSONSerialization.jsonObject(with: read(a.out + "/" + SyntheticFacts.manifestFile)) as! [String: Any]
        XCTAssertEqual(manifest["version"] as? Int, SyntheticManifest.currentVersion)
        manifest["version"] = 1
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: a.out + "/" + SyntheticFacts.manifestFile))
        XCTAssertEqual(try SyntheticFacts.write(a, log: Self.quiet).status, .written)
        XCTAssertEqual(try SyntheticFacts.write(a, log: Self.quiet).status, .upToDate)
        // another seed, another world
        var c = Self.small(dir + "/c")
        c.seed = 1
        try SyntheticFacts.write(c, log: Self.quiet)
        XCTAssertNotEqual(try read(a.out + "/corpus.txt"), try read(c.out + "/corpus.txt"))
    }

    func testFilesAreWhatTheirReadersTake() throws {
        let dir = try temporaryDirectory(self)
        let o = Self.small(dir + "/syn")
        try SyntheticFacts.write(o, log: Self.quiet)
        let corpus = o.out + "/" + SyntheticFacts.corpusFile

        // a vocabulary learned from the corpus, as pretrain learns it
        var counts = WordCounts()
        try Corpus.forEachDocument(corpus) { counts.add($0) }
        let tok = try WordPieceTokenizer(vocab: VocabTrainer.trainVocabulary(counts: counts, vocabSize: 8192))

        // probes: every fact in every template, objects one word piece, subjects two
        var po = ProbeOptions()
        po.probes = o.out + "/" + SyntheticFacts.probesFile
        let set = try ProbeSet.load(po, tokenizer: tok, maxLength: 64)
        XCTAssertEqual(set.probes.count, 24 * 5)
        XCTAssertEqual(set.counts.keys.sorted(), ["birthplace", "language", "occupation"])
        for (r, c) in set.counts {
            XCTAssertEqual(c.facts, 8, r); XCTAssertEqual(c.keptFacts, 8, r)
            XCTAssertEqual(c.droppedMultiPiece, 0, r); XCTAssertEqual(c.droppedOther, 0, r)
        }
        for t in set.tokenized { XCTAssertEqual(t.subject?.count, 2, set.probes[t.index].prompt) }
        XCTAssertEqual(set.probes.filter { $0.split == "held-out" }.count, 24 * 2)
        XCTAssertEqual(set.probes.filter { $0.split == "train" }.count, 24 * 3)
        XCTAssertTrue(set.probes.allSatisfy { $0.bucket == 40 }, "bucket: the times the corpus states each fact (--repetitions)")
        for (fact, ps) in Dictionary(grouping: set.probes, by: \.tuple) {
            XCTAssertEqual(ps.map(\.pattern).sorted(), [0, 1, 2, 3, 4], fact)
            XCTAssertEqual(Set(ps.map(\.target)).count, 1, fact)
        }
        // 4 objects per relation, each the object of 2 facts
        for (r, ps) in Dictionary(grouping: set.probes.filter { $0.pattern == 0 }, by: \.relation) {
            XCTAssertEqual(Dictionary(grouping: ps, by: \.target).mapValues(\.count).values.sorted(), [2, 2, 2, 2], r)
        }

        // the corpus states each fact in its training templates, never in a held-out one
        let text = try String(contentsOfFile: corpus, encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        let sentences = Set(lines)
        for p in set.probes {
            let s = p.prompt.replacingOccurrences(of: "[MASK]", with: p.target)
            XCTAssertEqual(sentences.contains(s), p.split == "train", "\(p.split ?? "-"): \(s)")
        }
        let held = SyntheticFacts.heldOut(o)
        for (r, h) in held.enumerated() {
            for t in h {
                let pattern = "^" + NSRegularExpression.escapedPattern(for: SyntheticFacts.relations[r].templates[t])
                    .replacingOccurrences(of: "\\[X\\]", with: ".+").replacingOccurrences(of: "\\[Y\\]", with: "\\S+") + "$"
                let re = try NSRegularExpression(pattern: pattern)
                let leaked = lines.filter { re.firstMatch(in: $0, range: NSRange($0.startIndex..., in: $0)) != nil }
                XCTAssertEqual(leaked, [], "held-out template '\(SyntheticFacts.relations[r].templates[t])' is in the corpus")
            }
        }
        XCTAssertEqual(lines.count, 24 * 40 + Int((Double(24 * 40) * 0.3 / 0.7).rounded()))
        let templateWords = Set(SyntheticFacts.relations.flatMap { $0.templates.flatMap { $0.split(separator: " ").map(String.init) } })
        let fillerWords = Set(SyntheticFacts.determiners + ["an"] + SyntheticFacts.adjectives + SyntheticFacts.nouns + SyntheticFacts.transitive
                              + SyntheticFacts.intransitive + SyntheticFacts.adverbs + SyntheticFacts.prepositions)
        XCTAssertEqual(templateWords.intersection(fillerWords), ["a", "the"])

        // CounterFact cases: one per fact, in the shapes the probes have
        let cases = try EditCases.load(dataDir: o.out, split: "edit", tokenizer: tok, limit: nil)
        XCTAssertEqual(cases.read, 24); XCTAssertEqual(cases.droppedMultiPiece, 0)
        let train = Dictionary(grouping: set.probes.filter { $0.split == "train" }, by: \.prompt)
        let heldOut = Dictionary(grouping: set.probes.filter { $0.split == "held-out" }, by: \.prompt)
        for c in cases.cases {
            let own = train[c.prompt]?.first
            XCTAssertEqual(own?.subject, c.subject, c.prompt); XCTAssertEqual(own?.target, c.trueTarget, c.prompt)
            XCTAssertEqual(heldOut[c.paraphrase]?.first?.subject, c.subject, c.paraphrase)
            let neighbour = train[c.neighbourhood]?.first
            XCTAssertNotEqual(neighbour?.subject, c.subject, c.neighbourhood)
            XCTAssertEqual(neighbour?.target, c.trueTarget, c.neighbourhood)
            XCTAssertEqual(neighbour?.relation, own?.relation, c.neighbourhood)
            XCTAssertNotEqual(c.newTarget, c.trueTarget)
            XCTAssertTrue(set.probes.contains { $0.relation == own?.relation && $0.target == c.newTarget }, c.newTarget)
        }
    }

    func testNeverOverwritesOtherData() throws {
        let dir = try temporaryDirectory(self)
        let o = Self.small(dir + "/syn")
        let corpus = o.out + "/" + SyntheticFacts.corpusFile
        XCTAssertEqual(try SyntheticFacts.write(o, log: Self.quiet).status, .written)
        let bytes = try read(corpus)
        let mtime = try FileManager.default.attributesOfItem(atPath: corpus)[.modificationDate] as? Date
        // the same settings: found up to date, nothing rewritten
        XCTAssertEqual(try SyntheticFacts.write(o, log: Self.quiet).status, .upToDate)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: corpus)[.modificationDate] as? Date, mtime)
        // a damaged file is made again, byte for byte
        try Data("x\n".utf8).write(to: URL(fileURLWithPath: corpus))
        XCTAssertEqual(try SyntheticFacts.write(o, log: Self.quiet).status, .written)
        XCTAssertEqual(try read(corpus), bytes)
        // other settings: refused, nothing changed
        var other = o
        other.repetitions = 41
        XCTAssertThrowsError(try SyntheticFacts.write(other, log: Self.quiet)) { e in
            XCTAssertEqual((e as? OptionError)?.key, "out")
            XCTAssertTrue("\(e)".contains("other settings (repetitions 40 -> 41)"), "\(e)")
        }
        XCTAssertEqual(try read(corpus), bytes)
        // a directory holding something else
        try FileManager.default.createDirectory(atPath: dir + "/mine", withIntermediateDirectories: true)
        try Data("notes\n".utf8).write(to: URL(fileURLWithPath: dir + "/mine/notes.txt"))
        XCTAssertThrowsError(try SyntheticFacts.write(Self.small(dir + "/mine"), log: Self.quiet)) { e in
            XCTAssertTrue("\(e)".contains("notes.txt"), "\(e)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/mine"), ["notes.txt"])
    }

    /// The command line end to end: generate, pretrain `tiny` on the corpus with a vocabulary
    /// learned from it, and eval consistency on the generated probes (every probe read, per split).
    func testPretrainAndConsistencyOnAGeneratedCorpus() throws {
        let dir = try temporaryDirectory(self)
        let synth = try runDroplab(["corpus", "synth", "--out", "syn", "--facts", "24", "--relations", "3", "--objects", "4",
                                    "--templates", "5", "--held-out-templates", "2", "--repetitions", "40", "--filler", "0.3"], cwd: dir)
        XCTAssertEqual(synth.status, 0, synth.stderr)
        XCTAssertTrue(synth.stdout.contains("syn written: 24 facts (8 subjects x 3 relations, 12 objects)"), synth.stdout)
        let again = try runDroplab(["corpus", "synth", "--out", "syn", "--facts", "24", "--relations", "3", "--objects", "4",
                                    "--templates", "5", "--held-out-templates", "2", "--repetitions", "40", "--filler", "0.3"], cwd: dir)
        XCTAssertTrue(again.stdout.contains("syn up to date"), again.stdout)

        let pre = try runDroplab(["pretrain", "--corpus", "syn/corpus.txt", "--preset", "tiny", "--dropout", "0", "--seq-len", "32",
                                  "--batch", "16", "--tokens", "1000000", "--val-fraction", "0.1", "--val-seq-len", "32",
                                  "--val-sequences", "16", "--out", "run", "--cache-dir", "cache"], cwd: dir)
        XCTAssertEqual(pre.status, 0, pre.stderr)
        XCTAssertTrue(pre.stdout.contains("stopped: end of data"), pre.stdout)

        let eval = try runDroplab(["eval", "consistency", "run/last.h5", "--probes", "syn/probes.jsonl", "--results", "results"], cwd: dir)
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stderr.contains("probes: 120 from 24 facts in 3 relation(s); 0 facts dropped"), eval.stderr)
        XCTAssertTrue(eval.stdout.contains("held-out probes (%)") && eval.stdout.contains("train probes (%)"), eval.stdout)
        let r = try JSONDecoder().decode(ConsistencyResult.self, from: read(dir + "/" + resultsDirectory(eval) + "/result.json"))
        XCTAssertEqual(r.probes, 120); XCTAssertEqual(r.facts, 24)
        XCTAssertEqual(r.perSplit?.keys.sorted(), ["held-out", "train"])
        XCTAssertEqual(r.perSplit?["held-out"]?.probes, 48); XCTAssertEqual(r.perSplit?["train"]?.probes, 72)
    }
}
