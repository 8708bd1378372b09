// Probe loading: ParaRel from the shared data (patterns x facts, single-piece objects, counts
// per relation), user JSONL (errors name the file and line), --limit sampling, batching.

@testable import Datasets
@testable import Evaluators
import Foundation
import TestSupport
import Text
import XCTest

final class ProbeLoadingTests: XCTestCase {
    static let vocab = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TextTests/Fixtures/vocab.txt").path
    static let pararel = "../shared/data/pararel"

    func tokenizer() throws -> WordPieceTokenizer { try WordPieceTokenizer(vocabFile: Self.vocab) }

    func lines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    /// Counts against a direct reading of the files: every fact of P17 and P36 is kept iff its
    /// object is one word piece, and then contributes one probe per pattern.
    func testParaRelCountsAndProbes() throws {
        guard FileManager.default.fileExists(atPath: Self.pararel) else { throw XCTSkip("no shared ParaRel data at \(Self.pararel)") }
        let tok = try tokenizer()
        var o = ProbeOptions(); o.dataDir = "../shared/data"; o.relations = ["P17", "P36"]
        let set = try ProbeSet.load(o, tokenizer: tok, maxLength: 64)
        for rel in ["P17", "P36"] {
            let patterns = try lines(Self.pararel + "/graphs_json/\(rel).jsonl").map { $0["pattern"] as! String }
            let facts = try lines(Self.pararel + "/trex_lms_vocab/\(rel).jsonl")
            let single = facts.filter { let ids = tok.encode($0["obj_label"] as! String); return ids.count == 1 && ids[0] != tok.unkId }
            let c = set.counts[rel]!
            XCTAssertEqual(c.facts, facts.count, rel)
            XCTAssertEqual(c.droppedMultiPiece, facts.count - single.count, rel)
            XCTAssertEqual(c.keptFacts + c.droppedOther, single.count, rel)
            XCTAssertEqual(c.probes, c.keptFacts * patterns.count, rel)
            print("pararel \(rel) with the test vocabulary: \(c)")
        }
        XCTAssertEqual(set.probes.count, set.tokenized.count)
        for (p, t) in zip(set.probes, set.tokenized) {
            XCTAssertEqual(t.ids.filter { $0 == tok.maskId }.count, 1)
            XCTAssertEqual(t.targetId, tok.encode(p.target)[0])
            // the subject span decodes to the subject
            let span = t.subject!.map { tok.token(of: t.ids[$0])! }
            XCTAssertEqual(span.joined(separator: " ").replacingOccurrences(of: " ##", with: ""),
                           WordPieceTokenizer.basicTokenize(p.subject!).joined(separator: " "), p.prompt)
        }
        // --limit samples facts with the seed, keeping all their patterns
        o.limit = 10
        let a = try ProbeSet.load(o, tokenizer: tok, maxLength: 64)
        XCTAssertEqual(Set(a.probes.map(\.tuple)).count + a.counts.values.reduce(0) { $0 + $1.droppedMultiPiece + $1.droppedOther }, 10)
        XCTAssertEqual(try ProbeSet.load(o, tokenizer: tok, maxLength: 64).probes, a.probes, "same seed, same sample")
        o.seed = 1
        XCTAssertNotEqual(try ProbeSet.load(o, tokenizer: tok, maxLength: 64).probes.map(\.tuple), a.probes.map(\.tuple))
    }

    func testUserProbeErrorsNameTheLine() throws {
        let tok = try tokenizer()
        let dir = try temporaryDirectory(self)
        func load(_ text: String) throws -> ProbeSet {
            try text.write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
            var o = ProbeOptions(); o.probes = dir + "/p.jsonl"
            return try ProbeSet.load(o, tokenizer: tok, maxLength: 64)
        }
        let ok = #"{"prompt": "paris is the capital of [MASK] .", "target": "france", "subject": "paris"}"#
        for (text, needle) in [
            (ok + "\n" + #"{"prompt": "no mask here", "target": "france"}"#, "p.jsonl:2: the prompt must contain [MASK] exactly once"),
            (#"{"prompt": "[MASK] and [MASK]", "target": "a"}"#, "p.jsonl:1: the prompt must contain [MASK] exactly once"),
            (ok + "\n\n" + #"{"prompt": "x [MASK]", "target": "a", "subject": "y"}"#, "p.jsonl:3: subject 'y' does not occur"),
            (ok + "\nnot json", "p.jsonl:2: not a JSON object"),
            (#"{"prompt": "x [MASK]"}"#, "p.jsonl:1: a probe needs \"prompt\" and \"target\""),
            ("\n", "p.jsonl: no probes"),
        ] {
            XCTAssertThrowsError(try load(text)) { XCTAssertTrue("\($0)".contains(needle), "\($0)") }
        }
        // a multi-piece target is dropped and counted, not an error
        let set = try load(ok + "\n" + #"{"prompt": "x is [MASK] .", "target": "zzzqqq"}"#)
        XCTAssertEqual(set.probes.count, 1)
        XCTAssertEqual(set.counts["user"]?.droppedMultiPiece, 1)
    }

    func testBatchesPadAndIndexRows() throws {
        let tok = try tokenizer()
        let mk = { (n: Int, idx: Int) in TokenizedProbe(index: idx, ids: [tok.clsId] + Array(repeating: Int32(1300), count: n) + [tok.maskId, tok.sepId],
                                                       maskPosition: n + 1, subject: 1..<2, targetId: 5) }
        let probes = [mk(5, 0), mk(2, 1), mk(5, 2), mk(3, 3)]
        let bs = ProbeBatch.batches(probes, size: 3, padId: tok.padId)
        XCTAssertEqual(bs.map { $0.items.map(\.index) }, [[1, 3, 0], [2]])
        let b = bs[0]
        XCTAssertEqual(b.T, 8)
        XCTAssertEqual(b.maskRows, [3, 8 + 4, 16 + 6])
        XCTAssertEqual(Array(b.batch.attentionMask[8..<16]), [1, 1, 1, 1, 1, 1, 0, 0])
        XCTAssertEqual(Position.subjectLast.positions(in: probes[0]), [1])
        XCTAssertEqual(Position.sep.positions(in: probes[1]), [4])
    }
}
