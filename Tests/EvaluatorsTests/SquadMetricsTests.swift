// SQuAD EM/F1 against the official scripts' definitions (tools/make_squad_metric_reference.py:
// ~250 hand-written and real dev cases scored in Python) and hand-written tricky cases.

@testable import Datasets
@testable import Evaluators
import Foundation
import TestSupport
import XCTest

final class SquadMetricsTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    struct Reference: Decodable {
        struct Scores: Decodable { let exact: Double; let f1: Double }
        struct Case: Decodable {
            let name: String
            let prediction: String
            let answers: [String]
            let na_prob: Double
            let normalized_prediction: String
            let normalized_answers: [String]
            let v1: Scores
            let v2: Scores
        }
        let cases: [Case]
        let v1: [String: Double]
        let v2: [String: Double]
    }

    func testMatchesOfficialScriptsOnFixture() throws {
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/squad_metric_reference.json")))
        XCTAssertGreaterThanOrEqual(ref.cases.count, 200)
        func scalars(_ s: String) -> [UInt32] { s.unicodeScalars.map(\.value) }
        var mismatches = 0
        for c in ref.cases {
            // normalization compared scalar by scalar (String == would apply canonical equivalence)
            XCTAssertEqual(scalars(SquadMetrics.normalize(c.prediction)), scalars(c.normalized_prediction), "normalize: \(c.name)")
            for (a, n) in zip(c.answers, c.normalized_answers) {
                XCTAssertEqual(scalars(SquadMetrics.normalize(a)), scalars(n), "normalize gold: \(c.name)")
            }
            let s1 = SquadMetrics.score(prediction: c.prediction, answers: c.answers, version: .v1)
            let s2 = SquadMetrics.score(prediction: c.prediction, answers: c.answers, version: .v2)
            if s1.exact != c.v1.exact || s1.f1 != c.v1.f1 || s2.exact != c.v2.exact || s2.f1 != c.v2.f1 {
                mismatches += 1
                XCTFail("\(c.name): v1 \(s1) vs \(c.v1), v2 \(s2) vs \(c.v2)")
            }
        }
        XCTAssertEqual(mismatches, 0)

        let v1 = SquadMetrics.evaluate(ref.cases.map { SquadMetrics.Item(id: $0.name, answers: $0.answers, prediction: $0.prediction) },
                                       version: .v1)
        // percentages (<= 100) averaged over ~200 cases in Double, in another order than Python's:
        // <= gamma_200 * 100 = 2e-12 (Float64, no BLAS); 1e-9 is 450x that
        XCTAssertEqual(v1.exact, ref.v1["exact_match"]!, accuracy: 1e-9)
        XCTAssertEqual(v1.f1, ref.v1["f1"]!, accuracy: 1e-9)

        let items = ref.cases.map {
            SquadMetrics.Item(id: $0.name, answers: $0.answers, prediction: $0.prediction, nullOdds: $0.na_prob, nonNullPrediction: $0.prediction)
        }
        let v2 = SquadMetrics.evaluate(items, version: .v2, bestThreshold: true)
        let got: [String: Double?] = [
            "exact": v2.exact, "f1": v2.f1, "total": Double(v2.total),
            "HasAns_exact": v2.hasAnsExact, "HasAns_f1": v2.hasAnsF1, "HasAns_total": v2.hasAnsTotal.map(Double.init),
            "NoAns_exact": v2.noAnsExact, "NoAns_f1": v2.noAnsF1, "NoAns_total": v2.noAnsTotal.map(Double.init),
            "best_exact": v2.bestExact, "best_exact_thresh": v2.bestExactThreshold,
            "best_f1": v2.bestF1, "best_f1_thresh": v2.bestF1Threshold,
        ]
        XCTAssertEqual(Set(got.keys), Set(ref.v2.keys))
        for (k, expected) in ref.v2 {
            guard let g = got[k] ?? nil else { XCTFail("missing \(k)"); continue }
            XCTAssertEqual(g, expected, accuracy: 1e-9, k)   // as v1: <= 2e-12 (percentages); thresholds are input odds, exact
        }
        print("squad metrics: \(ref.cases.count) cases match the official definitions; v1 EM \(v1.exact) F1 \(v1.f1), v2 \(ref.v2)")
    }

    func testTrickyCases() {
        func s(_ p: String, _ g: [String], _ v: SquadVersion = .v1) -> (Double, Double) {
            let r = SquadMetrics.score(prediction: p, answers: g, version: v)
            return (r.exact, r.f1)
        }
        // punctuation only: normalizes to "" (v1: F1 0 even when both are empty; v2: F1 = EM)
        XCTAssertEqual(SquadMetrics.normalize("?!..."), "")
        XCTAssertTrue(s("...", ["!"]) == (1, 0))
        XCTAssertTrue(s("...", ["!"], .v2) == (1, 1))
        // articles as whole words only
        XCTAssertEqual(SquadMetrics.normalize("The Theory of an Anthem, a..."), "theory of anthem")
        XCTAssertEqual(SquadMetrics.normalize("the_end"), "theend")
        XCTAssertEqual(SquadMetrics.normalize("thé a"), "thé")
        // only ASCII punctuation is removed; unicode dashes and quotes stay
        XCTAssertEqual(SquadMetrics.normalize("“Yes” — No"), "“yes” — no")
        XCTAssertTrue(s("“Yes”", ["yes"]) == (0, 0))
        // Python lower(): final sigma, dotted I; no canonical equivalence
        XCTAssertEqual(SquadMetrics.normalize("ΟΔΟΣ ΣΑ").unicodeScalars.map(\.value), "οδος σα".unicodeScalars.map(\.value))
        XCTAssertTrue(s("café", ["cafe\u{301}"]) == (0, 0))
        XCTAssertTrue(s("İ", ["i\u{307}"]) == (1, 1))
        // Python whitespace: NBSP and U+001C split, ZERO WIDTH SPACE does not
        XCTAssertEqual(SquadMetrics.normalize("a\u{A0}b\u{1C}c\u{200B}d"), "b c\u{200B}d")
        // multiple golds: max of each metric separately
        let m = s("Denver Broncos team", ["Denver Broncos", "the Broncos team of Denver"])
        XCTAssertEqual(m.0, 0)
        // 2PR / (P + R) of values <= 1: four roundings, <= 4 u64 = 4.4e-16 < 1e-15
        XCTAssertEqual(m.1, 2 * 1.0 * 0.75 / 1.75, accuracy: 1e-15)   // vs gold 2: P 3/3, R 3/4
        XCTAssertTrue(s("Denver Broncos", ["x", "denver broncos."]) == (1, 1))
        // Counter overlap counts repeated tokens at most as often as on both sides
        XCTAssertEqual(s("cat cat cat", ["cat"]).1, 2 * (1.0 / 3) * 1 / (1.0 / 3 + 1), accuracy: 1e-15)
        // v2: unanswerable gold = [""]; gold answers normalizing to "" are dropped
        XCTAssertTrue(s("", [], .v2) == (1, 1))
        XCTAssertTrue(s("the", [], .v2) == (1, 1))
        XCTAssertTrue(s("Paris", [], .v2) == (0, 0))
        XCTAssertTrue(s("", ["Paris"], .v2) == (0, 0))
        XCTAssertTrue(s("x", [".", "x"], .v2) == (1, 1))
        XCTAssertTrue(s("", ["."], .v2) == (1, 1))

        // aggregate v2 with HasAns/NoAns: has_ans is bool(answers), as the official script
        let items = [
            SquadMetrics.Item(id: "1", answers: ["Paris"], prediction: "Paris", nullOdds: -1, nonNullPrediction: "Paris"),
            SquadMetrics.Item(id: "2", answers: [], prediction: "", nullOdds: 2, nonNullPrediction: "London"),
            SquadMetrics.Item(id: "3", answers: ["..."], prediction: "", nullOdds: 0.5, nonNullPrediction: "x"),
            SquadMetrics.Item(id: "4", answers: ["Rome"], prediction: "", nullOdds: 1, nonNullPrediction: "Rome"),
        ]
        let r = SquadMetrics.evaluate(items, version: .v2, bestThreshold: true)
        XCTAssertEqual(r.exact, 75)
        XCTAssertEqual(r.hasAnsTotal, 3); XCTAssertEqual(r.noAnsTotal, 1)
        XCTAssertEqual(r.hasAnsExact!, 200.0 / 3, accuracy: 1e-12)   // a mean of 3 percentages: a few ulps of 67 (1.4e-14 each)
        XCTAssertEqual(r.noAnsExact, 100)
        // non-null predictions by odds: 1 (+1), 3 (x vs [""]: 0), 4 (+1), 2 (-1): best after 4 at odds 1
        XCTAssertEqual(r.bestExact, 75); XCTAssertEqual(r.bestExactThreshold, 1)
    }

    func testSHA256() {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(Data(repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
