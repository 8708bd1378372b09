// `droplab corpus facts` on the real shared data (a few thousand Wikipedia lines, 300 facts):
// each fact is stated exactly its bucket's number of times, in its relation's training patterns
// only (bucket 0 never, held-out patterns never), every statement lies in what pretrain trains
// on (its own tokenizer and validation split agree with the manifest), objects are single word
// pieces of the written vocabulary, the same seed gives the same bytes, and bad flags fail with
// one line naming the flag, creating nothing.

@testable import Datasets
@testable import Evaluators
import Foundation
import TestSupport
import Text
import Training
import XCTest

final class FactsCorpusTests: XCTestCase {
    static let quiet: (String) -> Void = { _ in }
    static var data: String { TestData.sharedData }

    /// 43 Wikipedia documents (about 250k tokens), 300 facts over the default buckets; a tenth of
    /// the documents held out, so that the validation split matters.
    static func small(_ out: String, seed: UInt64 = 0) -> FactsCorpusOptions {
        var o = FactsCorpusOptions()
        o.dataDir = data; o.wikiLines = 3000; o.facts = 300; o.maxShare = 0.5; o.valFraction = 0.1
        o.seed = seed; o.out = out
        return o
    }

    override func setUpWithError() throws {
        for p in ["/pararel/graphs_json", "/pararel/trex_lms_vocab", "/wiki_en"] where !FileManager.default.fileExists(atPath: Self.data + p) {
            throw XCTSkip("no shared data at \(Self.data + p)")
        }
    }

    func read(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    func manifest(_ dir: String) throws -> FactsManifest {
        try JSONDecoder().decode(FactsManifest.self, from: read(dir + "/" + FactsCorpus.manifestFile))
    }

    func jsonLines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    static func key(_ s: String) -> String { WordPieceTokenizer.basicTokenize(s).joined(separator: " ") }

    func testSameSeedSameBytesOtherSeedOthers() throws {
        let dir = try temporaryDirectory(self)
        let a = Self.small(dir + "/a"), b = Self.small(dir + "/b")
        XCTAssertEqual(try FactsCorpus.write(a, log: Self.quiet).status, .written)
        XCTAssertEqual(try FactsCorpus.write(b, log: Self.quiet).status, .written)
        for f in FactsCorpus.files + [FactsCorpus.manifestFile] {
            XCTAssertEqual(try read(a.out + "/" + f), try read(b.out + "/" + f), f)
        }
        // found up to date, nothing rewritten
        let mtime = try FileManager.default.attributesOfItem(atPath: a.out + "/corpus.txt")[.modificationDate] as? Date
        XCTAssertEqual(try FactsCorpus.write(a, log: Self.quiet).status, .upToDate)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: a.out + "/corpus.txt")[.modificationDate] as? Date, mtime)

        let c = Self.small(dir + "/c", seed: 1)
        try FactsCorpus.write(c, log: Self.quiet)
        for f in [FactsCorpus.corpusFile, FactsCorpus.probesFile, FactsCorpus.factsFile] {
            XCTAssertNotEqual(try read(a.out + "/" + f), try read(c.out + "/" + f), f)
        }
        // the vocabulary comes from the Wikipedia part alone: the seed does not change it
        XCTAssertEqual(try read(a.out + "/vocab.txt"), try read(c.out + "/vocab.txt"))
        XCTAssertNotEqual(try manifest(a.out).relations.mapValues(\.heldOutPatterns), try manifest(c.out).relations.mapValues(\.heldOutPatterns))
    }

    func testStatementsBucketsHeldOutPatternsAndVocabulary() throws {
        let dir = try temporaryDirectory(self)
        let o = Self.small(dir + "/facts")
        try FactsCorpus.write(o, log: Self.quiet)
        let m = try manifest(o.out)
        let corpus = o.out + "/" + FactsCorpus.corpusFile

        // buckets: the manifest's counts are the files'
        let facts = try jsonLines(o.out + "/" + FactsCorpus.factsFile)
        XCTAssertEqual(facts.count, 300); XCTAssertEqual(m.counts["facts"], 300)
        XCTAssertEqual(m.buckets.map(\.exposure), [0, 1, 4, 16, 64])
        for b in m.buckets {
            XCTAssertEqual(facts.filter { $0["bucket"] as? Int == b.exposure }.count, b.facts, "bucket \(b.exposure)")
            XCTAssertEqual(b.facts, 60, "bucket \(b.exposure)")                      // balanced
            XCTAssertEqual(b.statements, b.facts * b.exposure, "bucket \(b.exposure)")
        }
        XCTAssertEqual(m.counts["statements"], m.buckets.map(\.statements).reduce(0, +))

        // the relations' patterns, as ParaRel lists them (index = line)
        var patterns: [String: [String]] = [:]
        for r in m.relations.keys {
            patterns[r] = try jsonLines(Self.data + "/pararel/graphs_json/\(r).jsonl").map { try XCTUnwrap($0["pattern"] as? String) }
        }
        var trainTexts = Set<String>(), heldTexts: [String] = []
        for (r, c) in m.relations {
            let n = patterns[r]!.count
            XCTAssertEqual(Set(c.trainPatterns).union(c.heldOutPatterns), Set(patterns[r]!.indices), r)
            XCTAssertTrue(Set(c.trainPatterns).isDisjoint(with: c.heldOutPatterns), r)
            XCTAssertTrue(n < 2 ? c.heldOutPatterns.isEmpty : (1...(n - 1)).contains(c.heldOutPatterns.count), "\(r): \(c.heldOutPatterns)")
            if n >= 4 { XCTAssertGreaterThanOrEqual(c.heldOutPatterns.count, Int((0.3 * Double(n)).rounded()), r) }
            trainTexts.formUnion(c.trainPatterns.map { Self.key(patterns[r]![$0]) })
            heldTexts += c.heldOutPatterns.map { Self.key(patterns[r]![$0]) }
        }
        XCTAssertEqual(m.counts["held_out_patterns"], heldTexts.count)
        XCTAssertEqual(m.counts["held_out_patterns_trained_elsewhere"], heldTexts.filter(trainTexts.contains).count)
        XCTAssertLessThanOrEqual(m.counts["held_out_patterns_trained_elsewhere"]!, 2)

        // every line of the corpus, as the model reads it; each fact's statements counted
        let lines = try String(contentsOfFile: corpus, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var occurrences: [String: [Int]] = [:]                                       // normalised line -> line numbers
        for (i, l) in lines.enumerated() { occurrences[Self.key(l), default: []].append(i) }
        func render(_ p: String, _ f: [String: Any]) -> String {
            p.replacingOccurrences(of: "[X]", with: f["subject"] as! String).replacingOccurrences(of: "[Y]", with: f["object"] as! String)
        }
        var statementLines = Set<Int>()
        for f in facts {
            let r = f["relation"] as! String, bucket = f["bucket"] as! Int, rel = m.relations[r]!
            let perPattern = f["statements"] as! [String: Int]
            var total = 0
            for p in rel.trainPatterns {
                let at = occurrences[Self.key(render(patterns[r]![p], f))] ?? []
                XCTAssertEqual(at.count, perPattern[String(p)] ?? 0, "\(r) pattern \(p): \(render(patterns[r]![p], f))")
                total += at.count
                statementLines.formUnion(at)
            }
            XCTAssertEqual(total, bucket, "\(r) \(f["subject"]!) -> \(f["object"]!)")  // exactly `bucket` times; bucket 0 never
            XCTAssertEqual(perPattern.count, min(bucket, rel.trainPatterns.count), "diverse patterns: \(perPattern)")
            for p in rel.heldOutPatterns {
                XCTAssertNil(occurrences[Self.key(render(patterns[r]![p], f))], "held-out pattern in the corpus: \(render(patterns[r]![p], f))")
            }
        }
        XCTAssertEqual(statementLines.count, m.counts["statements"])
        // spread over the whole stream: every quarter of the corpus holds statements
        for q in 0..<4 {
            let range = (q * lines.count / 4)..<((q + 1) * lines.count / 4)
            XCTAssertGreaterThan(statementLines.filter(range.contains).count, m.counts["statements"]! / 10, "quarter \(q)")
        }

        // objects are single word pieces of the written vocabulary; every probe loads
        let tok = try WordPieceTokenizer(vocabFile: o.out + "/" + FactsCorpus.vocabFile)
        XCTAssertEqual(tok.vocab.count, 8192)
        for f in facts {
            let ids = tok.encode(f["object"] as! String)
            XCTAssertTrue(ids.count == 1 && ids[0] != tok.unkId, "\(f["object"]!) is \(ids.count) pieces")
        }
        var po = ProbeOptions()
        po.probes = o.out + "/" + FactsCorpus.probesFile
        let set = try ProbeSet.load(po, tokenizer: tok, maxLength: 512)
        XCTAssertEqual(set.probes.count, m.counts["probes"])
        XCTAssertEqual(set.counts.values.map(\.keptFacts).reduce(0, +), 300)
        XCTAssertEqual(set.counts.values.map(\.droppedMultiPiece).reduce(0, +), 0)
        XCTAssertEqual(set.counts.values.map(\.droppedOther).reduce(0, +), 0)
        for b in m.buckets {
            XCTAssertEqual(set.probes.filter { $0.bucket == b.exposure && $0.split == "held-out" }.count, b.heldOutProbes, "bucket \(b.exposure)")
            XCTAssertEqual(set.probes.filter { $0.bucket == b.exposure && $0.split == "train" }.count, b.trainProbes, "bucket \(b.exposure)")
        }
        for p in set.probes {
            XCTAssertEqual(p.split == "held-out", m.relations[p.relation]!.heldOutPatterns.contains(p.pattern), p.prompt)
        }
        let raw = try jsonLines(po.probes!)
        XCTAssertTrue(raw.allSatisfy { $0["concept"] as? String == $0["target"] as? String })

        // pretrain's view: its tokenizer and validation split give the manifest's token counts,
        // and no statement is in a document it holds out
        let cache = TokenShardCache(root: dir + "/cache", files: [corpus], vocab: tok.vocab, valFraction: o.valFraction)
        let shard = try cache.shard(0, tokenizer: tok, log: Self.quiet)
        XCTAssertEqual(shard.train.count, m.pretrain.trainTokens)
        XCTAssertEqual(shard.train.count, m.counts["train_tokens"])
        XCTAssertEqual(shard.val.count, m.counts["validation_tokens"])
        XCTAssertGreaterThan(m.counts["validation_documents"]!, 0)
        let stated = Set(statementLines.map { Self.key(lines[$0]) })
        var held = 0
        try Corpus.forEachDocument(corpus) { doc in
            guard Double(StableHash.of(doc) % 1_000_000) < o.valFraction * 1_000_000 else { return }
            held += 1
            for l in doc.split(separator: "\n") { XCTAssertFalse(stated.contains(Self.key(String(l))), "statement in a validation document: \(l)") }
        }
        XCTAssertEqual(held, m.counts["validation_documents"])
        XCTAssertEqual(m.counts["wiki_tokens"]! + m.counts["fact_tokens"]!,
                       shard.train.count + shard.val.count - (m.counts["wiki_documents"]!))   // one [SEP] per document
        XCTAssertEqual(m.shares["token_share"]!, Double(m.counts["fact_tokens"]!) / Double(m.counts["wiki_tokens"]! + m.counts["fact_tokens"]!))

        // salient.jsonl (pretrain --salient): each distinct statement line with its fact's object;
        // the shards it marks hold the same tokens, and the marks are exactly the objects of the
        // statements (every occurrence of the object's piece in each statement)
        let salient = try SalientLines.read(o.out + "/" + FactsCorpus.salientFile, flag: "salient")
        XCTAssertEqual(Set(salient.words.keys), Set(statementLines.map { lines[$0] }))
        for f in facts {
            let r = f["relation"] as! String
            for (p, n) in f["statements"] as! [String: Int] where n > 0 {
                XCTAssertEqual(salient.words[render(patterns[r]![Int(p)!], f)], f["object"] as? String)
            }
        }
        let marked = try TokenShardCache(root: dir + "/cache", files: [corpus], vocab: tok.vocab, valFraction: o.valFraction,
                                         salient: salient).shard(0, tokenizer: tok, log: Self.quiet)
        let ids = marked.train.all()
        XCTAssertEqual(ids, shard.train.all())
        XCTAssertEqual(marked.val.all(), shard.val.all())
        let objectPieces = statementLines.map { l in tok.encode(lines[l]).filter { $0 == tok.encode(salient.words[lines[l]]!)[0] }.count }
        XCTAssertEqual(marked.salient.count, objectPieces.reduce(0, +))
        XCTAssertEqual(marked.salient, marked.salient.sorted())
        XCTAssertEqual(Set(marked.salient).count, marked.salient.count)
        let objects = Set(facts.map { tok.encode($0["object"] as! String)[0] })
        XCTAssertTrue(marked.salient.allSatisfy { objects.contains(ids[Int($0)]) })
    }

    func testNeverOverwritesOtherData() throws {
        let dir = try temporaryDirectory(self)
        let o = Self.small(dir + "/facts")
        try FactsCorpus.write(o, log: Self.quiet)
        let bytes = try read(o.out + "/corpus.txt")
        var other = o
        other.facts = 301
        XCTAssertThrowsError(try FactsCorpus.write(other, log: Self.quiet)) { e in
            XCTAssertEqual((e as? OptionError)?.key, "out")
            XCTAssertTrue("\(e)".contains("other settings (facts 300 -> 301)"), "\(e)")
        }
        XCTAssertEqual(try read(o.out + "/corpus.txt"), bytes)
        // a damaged file is made again, byte for byte
        try Data("x\n".utf8).write(to: URL(fileURLWithPath: o.out + "/probes.jsonl"))
        XCTAssertEqual(try FactsCorpus.write(o, log: Self.quiet).status, .written)
        XCTAssertEqual(try read(o.out + "/corpus.txt"), bytes)
        // a directory holding something else
        try FileManager.default.createDirectory(atPath: dir + "/mine", withIntermediateDirectories: true)
        try Data("notes\n".utf8).write(to: URL(fileURLWithPath: dir + "/mine/notes.txt"))
        XCTAssertThrowsError(try FactsCorpus.write(Self.small(dir + "/mine"), log: Self.quiet)) { e in
            XCTAssertTrue("\(e)".contains("notes.txt"), "\(e)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/mine"), ["notes.txt"])
    }

    func testBadFlagsAreOneLineErrorsNamingTheFlag() throws {
        let dir = try temporaryDirectory(self)
        let base = ["corpus", "facts", "--data-dir", Self.data, "--out", "out", "--wiki-lines", "3000"]
        let cases: [([String], [String])] = [
            (["--exposures", "4,1"], ["--exposures", "increasing"]),
            (["--exposures", "0,x"], ["--exposures"]),
            (["--exposures", "0", "0"], ["--exposures"]),
            (["--facts", "0"], ["--facts"]),
            (["--held-out", "1.5"], ["--held-out"]),
            (["--max-share", "0"], ["--max-share"]),
            (["--vocab-size", "10"], ["--vocab-size"]),
            (["--wiki-lines", "-3"], ["--wiki-lines"]),
            (["--val-fraction", "1"], ["--val-fraction"]),
            (["--facts", "300", "--max-share", "0.01"], ["--max-share", "0.01 is exceeded"]),   // found after reading the data
            (["--facts", "900000"], ["--facts", "eligible facts"]),
        ]
        for (args, needles) in cases {
            let r = try runDroplab(base + args, cwd: dir)
            assertOneLineError(r, contains: needles)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"), "\(args) created out")
        }
        let missing = try runDroplab(["corpus", "facts", "--data-dir", dir + "/nothing", "--out", "out"], cwd: dir)
        assertOneLineError(missing, contains: ["--data-dir"])
    }
}
