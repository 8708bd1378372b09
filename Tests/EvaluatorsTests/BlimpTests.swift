// BLiMP pseudo-log-likelihood against transformers (tools/make_blimp_reference.py): a tiny
// random BERT stored in droplab's checkpoint format by h5py, 24 real BLiMP pairs.

import Checkpoint
@testable import Evaluators
import Foundation
import TestSupport
import Text
import XCTest

final class BlimpTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    struct Reference: Decodable {
        struct Pair: Decodable {
            let sentence_good: String, sentence_bad: String
            let good_tokens: [Int32], bad_tokens: [Int32]
            let score_good: Double, score_bad: Double
            let correct: Bool
        }
        let pairs: [Pair]
        let accuracy: Double
    }

    func testPseudoLogLikelihoodMatchesTransformers() throws {
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/blimp_reference.json")))
        let ck = try Checkpoint.load(Self.fixtures + "/blimp_model.h5")   // written by h5py
        let tok = try WordPieceTokenizer(vocab: ck.vocab)
        var sentences: [[Int32]] = []
        for p in ref.pairs {
            XCTAssertEqual(tok.encode(p.sentence_good), p.good_tokens, p.sentence_good)
            XCTAssertEqual(tok.encode(p.sentence_bad), p.bad_tokens, p.sentence_bad)
            sentences += [p.good_tokens, p.bad_tokens]
        }
        let expected = ref.pairs.flatMap { [$0.score_good, $0.score_bad] }
        // batches mix sentences of different lengths (padding), and a batch of 1 has none.
        // atol: torch's scores are float32 too. A PLL sums <= 22 masked positions' log P, each moved by
        // <= 2 max|δz|; δz has RMS √2 u √(14 * 32 / 6) |z| = 1.5e-6 (|z| <~ 2; Tolerances.swift), about
        // 4.5 RMS at the largest of V = 4336 logits, so a position's log P moves by ~1.3e-5 at most and
        // a sentence's sum by √22 * 2.1e-6 = 1e-5 RMS: 6 RMS = 6e-5, 3x below 2e-4 (measured <= 4.2e-6
        // on four OpenBLAS kernels).
        for batch in [64, 7, 1] {
            let scores = Blimp.pseudoLogLikelihoods(ck.model, tok, sentences, batch: batch)
            assertClose(scores, expected, rtol: 0, atol: 2e-4, "PLL scores, batch \(batch)")
            print("blimp parity (batch \(batch)): \(difference(scores, expected, rtol: 0, atol: 0))")
        }
        let scores = Blimp.pseudoLogLikelihoods(ck.model, tok, sentences, batch: 64)
        // the closest pair's scores differ by 0.086, 400x the bound above: the order is stable
        for (i, p) in ref.pairs.enumerated() { XCTAssertEqual(scores[2 * i] > scores[2 * i + 1], p.correct) }
    }

    func testCLIWritesAccuracyJSON() throws {
        let dir = try temporaryDirectory(self)
        try FileManager.default.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.fixtures + "/blimp_model.h5", toPath: dir + "/run/last.h5")
        let r = try runDroplab(["eval", "blimp", dir + "/run/last.h5", "--limit", "2", "--data-dir", TestData.sharedData,
                                "--results", dir + "/results"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: resultsDirectory(r) + "/result.json"))) as! [String: Any]
        let overall = json["overall"] as! [String: Any]
        XCTAssertEqual(overall["total"] as? Int, 134)   // 67 paradigms x 2
        XCTAssertEqual((json["perParadigm"] as! [String: Any]).count, 67)
        XCTAssertEqual((json["perPhenomenon"] as! [String: Any]).count, 13)   // distinct linguistics_term values
        assertOneLineError(try runDroplab(["eval", "blimp", dir + "/run/last.h5", "--data-dir", dir + "/nowhere"]),
                           contains: ["nowhere/blimp/data"])
    }
}
