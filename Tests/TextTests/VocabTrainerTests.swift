import Foundation
import XCTest
@testable import Text

final class VocabTrainerTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// A few hundred lines of real prose (the wiki lines of the tokenizer fixture).
    private func corpus() throws -> [String] {
        struct Line: Decodable { let text: String }
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("tokenizer_reference.jsonl"))
        let lines = try data.split(separator: UInt8(ascii: "\n")).prefix(130).map {
            try JSONDecoder().decode(Line.self, from: Data($0)).text
        }
        return lines
    }

    func testTrainsRequestedSizeAndCoversItsCorpus() throws {
        let texts = try corpus()
        var messages: [String] = []
        let vocab = VocabTrainer.trainVocabulary(texts: texts, vocabSize: 600, log: { messages.append($0) })
        XCTAssertEqual(vocab.count, 600, messages.joined(separator: "\n"))
        XCTAssertEqual(Array(vocab.prefix(5)), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        XCTAssertEqual(Set(vocab).count, vocab.count, "duplicate entries")
        XCTAssertTrue(vocab.contains("the"), "no 'the' in \(vocab.suffix(50))")
        // Single characters, then their ## forms, then merged pieces.
        let singles = vocab.dropFirst(5).prefix { $0.unicodeScalars.count == 1 }
        XCTAssertGreaterThan(singles.count, 30)
        XCTAssertEqual(Array(singles), singles.sorted { $0.unicodeScalars.first!.value < $1.unicodeScalars.first!.value })

        let tok = try WordPieceTokenizer(vocab: vocab)
        var total = 0, unknown = 0
        for t in texts {
            let ids = tok.encode(t)
            total += ids.count
            unknown += ids.filter { $0 == tok.unkId }.count
        }
        // integer and string work only (the same on every CPU): every character of the corpus is in the
        // alphabet unless the 600-entry budget cut it, so [UNK] stays rare; 1% is the requirement
        XCTAssertLessThan(Double(unknown), 0.01 * Double(total), "\(unknown) [UNK] in \(total) tokens")
        XCTAssertTrue(messages.contains { $0.contains("merges") }, "\(messages)")
    }

    func testDeterministic() throws {
        let texts = try corpus()
        let a = VocabTrainer.trainVocabulary(texts: texts, vocabSize: 400)
        let b = VocabTrainer.trainVocabulary(texts: texts.reversed(), vocabSize: 400)
        XCTAssertEqual(a, b)
    }

    func testSmallCorpusGivesSmallerVocabularyAndSaysSo() {
        var messages: [String] = []
        let vocab = WordPieceTokenizer.trainVocabulary(texts: ["low lower lowest", "newer newest wider"],
                                                       vocabSize: 1000, minFrequency: 1, log: { messages.append($0) })
        XCTAssertLessThan(vocab.count, 1000)
        XCTAssertTrue(messages.contains { $0.contains("corpus too small") }, "\(messages)")
        let tok = try! WordPieceTokenizer(vocab: vocab)
        XCTAssertEqual(tok.tokenize("lowest newer"), ["lowest", "newer"])
    }

    func testAlphabetBudgetAndPruning() {
        // Vocabulary smaller than the alphabet: keeps the most frequent characters only.
        // Budget 3: "a" (the most frequent, ties by code point) with its ## form, then a merge
        // ("##a" + "##a" and "a" + "##a" both occur once: the tie goes to the smaller strings).
        let vocab = VocabTrainer.trainVocabulary(texts: ["aaa bbb ccc abc zzq"], vocabSize: 8, minFrequency: 1)
        XCTAssertEqual(Array(vocab.dropFirst(5)), ["a", "##a", "##aa"])

        var counts = WordCounts(maxDistinctWords: 8)
        for i in 0..<20 { counts.add("common words w\(i)") }
        XCTAssertLessThanOrEqual(counts.distinctWords, 8)
        XCTAssertEqual(counts.counts["common"], 20)
        XCTAssertEqual(counts.totalWords, 60)
        XCTAssertGreaterThan(counts.prunedWords, 0)
    }

    func testWriteVocabularyRoundTrip() throws {
        let vocab = VocabTrainer.trainVocabulary(texts: try corpus(), vocabSize: 300)
        let path = NSTemporaryDirectory() + "droplab-trained-\(UUID().uuidString).txt"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try WordPieceTokenizer.writeVocabulary(vocab, to: path)
        let tok = try WordPieceTokenizer(vocabFile: path)
        XCTAssertEqual(tok.vocab, vocab)
    }
}
