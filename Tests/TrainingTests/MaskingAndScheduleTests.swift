import Autograd
import Foundation
import TestSupport
import Text
@testable import Training
import XCTest

final class MaskingAndScheduleTests: XCTestCase {
    func testMaskingStatistics() { checkMaskingStatistics(rate: 0.15) }

    /// pretrain --mask-rate 0.4 (Wettig et al. 2023): accepted, 1 rejected; a masker at that rate
    /// chooses 40% and keeps the 80/10/10 split of the chosen tokens.
    func testPretrainMaskRate() throws {
        var o = PretrainOptions(); o.maskRate = 0.4
        try o.validate()
        o.maskRate = 1
        XCTAssertThrowsError(try o.validate())
        checkMaskingStatistics(rate: 0.4)
    }

    private func checkMaskingStatistics(rate: Float) {
        let special: Set<Int32> = [0, 1, 2, 3, 4]
        let masker = Masker(config: MaskingConfig(rate: rate), maskId: 4, vocabSize: 1000, special: special)
        var rng = RNG(seed: 1)
        var chosen = 0, toMask = 0, toRandom = 0, kept = 0, maskable = 0
        for _ in 0..<200 {
            // sequences with specials at both ends and some padding
            var ids: [Int32] = [2] + (0..<500).map { _ in Int32(5 + rng.int(995)) } + [3] + [Int32](repeating: 0, count: 11)
            let original = ids
            let labels = masker.apply(&ids, rng: &rng)
            for i in ids.indices {
                if special.contains(original[i]) {
                    XCTAssertEqual(labels[i], -100); XCTAssertEqual(ids[i], original[i]); continue
                }
                maskable += 1
                guard labels[i] != -100 else { XCTAssertEqual(ids[i], original[i]); continue }
                XCTAssertEqual(labels[i], original[i])
                chosen += 1
                if ids[i] == 4 { toMask += 1 } else if ids[i] == original[i] { kept += 1 } else {
                    toRandom += 1; XCTAssertFalse(special.contains(ids[i]))
                }
            }
        }
        let n = Double(chosen)
        // Binomial margins (the masker draws from the integer RNG with a fixed seed: the same
        // counts on every CPU). 1e5 maskable tokens: the rate's SE is at most sqrt(0.4 * 0.6 / 1e5) =
        // 1.55e-3 (0.15: 1.1e-3), so 0.007 is 4.5 SE. Of the >= 15000 chosen, SE sqrt(0.8 * 0.2 / 15000) = 3.3e-3 for
        // [MASK] (0.01 = 3.1 SE) and sqrt(0.1 * 0.9 / 15000) = 2.4e-3 for random and kept (4.1 SE);
        // a random replacement equal to the original (1/995 of them) shifts 0.1 by 1e-4 only.
        XCTAssertEqual(Double(chosen) / Double(maskable), Double(rate), accuracy: 0.007)
        XCTAssertEqual(Double(toMask) / n, 0.8, accuracy: 0.01)
        XCTAssertEqual(Double(toRandom) / n, 0.1, accuracy: 0.01)   // random may hit the original: ~0.1% of them
        XCTAssertEqual(Double(kept) / n, 0.1, accuracy: 0.01)
    }

    /// pretrain --salient: the marked word of every salient line is chosen at --salient-mask-rate
    /// (1: always), in the short-sequence phase and after it; the same word in other lines, and
    /// every other word, at --mask-rate. Options: --salient-mask-rate needs --salient and a rate in (0, 1].
    func testSalientWordsAreChosenAtTheirRate() throws {
        let dir = try temporaryDirectory(self)
        // documents of statements: "paris ... france" lines are salient (france marked), "berlin ...
        // germany" lines are not, and a line naming france in another sentence is not either
        var text = ""
        for d in 0..<1200 {
            text += "paris is the capital of france .\nberlin is the capital of germany .\n"
            text += (d % 3 == 0 ? "france is of the capital .\n" : "") + "\n"
        }
        try text.write(toFile: dir + "/corpus.txt", atomically: true, encoding: .utf8)
        let tok = try WordPieceTokenizer(vocabFile: TestData.fixtureVocab)
        let france = tok.encode("france")[0], germany = tok.encode("germany")[0]
        let salient = SalientLines(["paris is the capital of france .": "france"])
        let cache = TokenShardCache(root: dir + "/cache", files: [dir + "/corpus.txt"], vocab: tok.vocab, valFraction: 0.01, salient: salient)
        let shard = try cache.shard(0, tokenizer: tok, log: { _ in })
        let ids = shard.train.all()
        XCTAssertEqual(shard.salient.map { ids[Int($0)] }, [Int32](repeating: france, count: shard.salient.count))
        XCTAssertEqual(shard.salient.count, ids.indices.filter { ids[$0] == france && ids[$0 + 1] == tok.encode(".")[0] }.count,
                       "every statement's france, not the other line's")
        var o = PretrainOptions()
        o.seqLen = 32; o.batch = 8
        var data = Pretrain.trainingData(o, cache: cache, tokenizer: tok, short: (seqLen: 12, batches: 5), log: { _ in })
        let period = tok.encode(".")[0]
        var statementFrance = 0, chosen = 0, germanyChosen = 0, germanyAll = 0, batches = 0
        while let ex = try data.next() {
            batches += 1
            let original = ex.labels.indices.map { ex.labels[$0] == -100 ? ex.batch.ids[$0] : ex.labels[$0] }
            for i in original.indices.dropLast() {
                if original[i] == germany { germanyAll += 1; germanyChosen += ex.labels[i] == -100 ? 0 : 1 }
                if original[i] == france && original[i + 1] == period {   // a statement's france (the other line's is followed by "is")
                    statementFrance += 1; chosen += ex.labels[i] == -100 ? 0 : 1
                }
            }
        }
        XCTAssertGreaterThan(statementFrance, 300)
        XCTAssertEqual(chosen, statementFrance, "salient rate 1: every statement's france is chosen")
        XCTAssertGreaterThan(batches, 5, "both phases")
        // germany: binomial at 0.15; n >= 700, SE <= sqrt(0.15 * 0.85 / 700) = 0.0135: 0.06 is 4.4 SE
        XCTAssertGreaterThan(germanyAll, 700)
        XCTAssertEqual(Double(germanyChosen) / Double(germanyAll), 0.15, accuracy: 0.06)

        o.salient = "salient.jsonl"; o.salientMaskRate = 0.5
        try o.validate()
        o.salientMaskRate = 0
        XCTAssertThrowsError(try o.validate()) { XCTAssertTrue("\($0)".contains("salient-mask-rate"), "\($0)") }
        o.salientMaskRate = 0.5; o.salient = nil
        XCTAssertThrowsError(try o.validate()) { XCTAssertTrue("\($0)".contains("needs --salient"), "\($0)") }
    }

    func testMaskingIsSeeded() {
        let masker = Masker(maskId: 4, vocabSize: 50, special: [0, 1, 2, 3, 4])
        let base: [Int32] = (0..<300).map { Int32(5 + $0 % 45) }
        var a = base, b = base, c = base
        var r1 = RNG(seed: 9), r2 = RNG(seed: 9), r3 = RNG(seed: 10)
        XCTAssertEqual(masker.apply(&a, rng: &r1), masker.apply(&b, rng: &r2))
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(masker.apply(&c, rng: &r3), masker.apply(&a, rng: &r1))
    }

    func testWholeWordMaskingMasksWordsTogether() {
        // ids 10..19 are "##" continuations
        let cont = (0..<30).map { $0 >= 10 && $0 < 20 }
        let masker = Masker(config: .init(rate: 0.3), maskId: 4, vocabSize: 30, special: [0, 1, 2, 3, 4], continuation: cont)
        var rng = RNG(seed: 3)
        for _ in 0..<100 {
            var ids: [Int32] = [2]
            for _ in 0..<40 { ids.append(Int32(20 + rng.int(10))); for _ in 0..<rng.int(3) { ids.append(Int32(10 + rng.int(10))) } }
            ids.append(3)
            let labels = masker.apply(&ids, rng: &rng)
            for i in 2..<(ids.count - 1) where cont[Int(labels[i] == -100 ? ids[i] : labels[i])] {
                XCTAssertEqual(labels[i] == -100, labels[i - 1] == -100, "a ## piece is masked iff the piece before it is")
            }
        }
    }

    func testSchedules() {
        // lr(at:) is float32 arithmetic on exactly representable values: every expected value
        // here is exact but 0.1 = 1/10 (one rounding, u * 0.1 = 6e-9 from Double 0.1) and the
        // cosine's 1 + cos(pi / 2) (cos in Double, then a float32 rounding: 2u * 2 = 2.4e-7 at most).
        let lin = LRSchedule(peak: 1, warmupSteps: 10, totalSteps: 110, decay: .linear)
        XCTAssertEqual(lin.lr(at: 0), 0.1, accuracy: 1e-7)
        XCTAssertEqual(lin.lr(at: 9), 1, accuracy: 1e-7)
        XCTAssertEqual(lin.lr(at: 60), 0.5, accuracy: 1e-7)
        XCTAssertEqual(lin.lr(at: 110), 0, accuracy: 1e-7)
        let cos = LRSchedule(peak: 2, warmupSteps: 0, totalSteps: 100, decay: .cosine)
        XCTAssertEqual(cos.lr(at: 0), 2, accuracy: 1e-6)
        XCTAssertEqual(cos.lr(at: 50), 1, accuracy: 1e-6)
        XCTAssertEqual(cos.lr(at: 100), 0, accuracy: 1e-6)
    }

    func testEarlyDropoutSwitchesOff() {
        var o = TrainerOptions(steps: 10, schedule: .init(peak: 1, warmupSteps: 0, totalSteps: 10), hiddenDropout: 0.1,
                               attentionDropout: 0.2, seed: 0)
        o.earlyDropoutSteps = 3
        XCTAssertEqual(o.dropout(at: 2).hidden, 0.1)
        XCTAssertEqual(o.dropout(at: 2).attention, 0.2)
        XCTAssertEqual(o.dropout(at: 3).hidden, 0)
        XCTAssertEqual(o.dropout(at: 3).attention, 0)
    }
}
