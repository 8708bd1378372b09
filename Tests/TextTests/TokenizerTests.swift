// WordPiece tokenizer tests. The reference fixture comes from Hugging Face's
// BertTokenizerFast (tools/make_tokenizer_reference.py); see that script's header.

import Foundation
import XCTest
@testable import Text

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

private struct ReferenceLine: Decodable {
    let text: String
    let ids: [Int32]
    let tokens: [String]
    let offsets: [[Int]]
}

final class TokenizerTests: XCTestCase {
    static let tokenizer: WordPieceTokenizer = {
        try! WordPieceTokenizer(vocabFile: fixtures.appendingPathComponent("vocab.txt").path)
    }()

    private func referenceLines() throws -> [ReferenceLine] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("tokenizer_reference.jsonl"))
        // JSONDecoder, not JSONSerialization: the latter drops a leading U+FEFF inside strings.
        return try data.split(separator: UInt8(ascii: "\n")).map {
            try JSONDecoder().decode(ReferenceLine.self, from: Data($0))
        }
    }

    private func tempFile(_ contents: String?) -> String {
        let path = NSTemporaryDirectory() + "droplab-vocab-\(UUID().uuidString).txt"
        if let contents { try! contents.write(toFile: path, atomically: true, encoding: .utf8) }
        return path
    }

    // MARK: Hugging Face parity

    func testMatchesHuggingFaceReference() throws {
        let tok = Self.tokenizer
        let lines = try referenceLines()
        XCTAssertGreaterThanOrEqual(lines.count, 300)
        var failures = 0
        for line in lines {
            let got = tok.encodeWithOffsets(line.text)
            let ids = got.map(\.id)
            if ids != line.ids {
                failures += 1
                if failures <= 10 {
                    XCTFail("""
                        ids differ for \(line.text.debugDescription)
                          got      \(ids.map { tok.token(of: $0) ?? "?" })
                          expected \(line.tokens)
                        """)
                }
                continue
            }
            XCTAssertEqual(tok.encode(line.text), line.ids, line.text.debugDescription)
            XCTAssertEqual(tok.tokenize(line.text), line.tokens, line.text.debugDescription)
            let offsets = got.map { [$0.start, $0.end] }
            if offsets != line.offsets {
                failures += 1
                XCTFail("offsets differ for \(line.text.debugDescription): got \(offsets), expected \(line.offsets)")
            }
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(lines.count) reference lines differ")
    }

    /// The basic tokenizer on every code point (each between two x's), against per-block
    /// FNV-1a hashes of HF's pre-tokens. On failure, compare with
    /// `tools/make_tokenizer_reference.py --show-codepoints START:END`.
    func testEveryCodePointMatchesHuggingFace() throws {
        let digest = try String(contentsOf: fixtures.appendingPathComponent("unicode_digest.tsv"), encoding: .utf8)
        var bad: [String] = []
        var blocks = 0
        for line in digest.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            guard fields.count == 2, let start = UInt32(fields[0], radix: 16) else { continue }
            blocks += 1
            var text = String.UnicodeScalarView()
            for v in start..<(start + 4096) {
                guard let s = Unicode.Scalar(v) else { continue }
                if !text.isEmpty { text.append(" ") }
                text.append("x"); text.append(s); text.append("x")
            }
            let words = WordPieceTokenizer.basicTokenize(String(text))
            var h: UInt64 = 0xCBF2_9CE4_8422_2325
            for b in words.joined(separator: "\n").utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
            if String(format: "%016llx", h) != fields[1] {
                bad.append(String(format: "%X:%X", start, start + 4096))
            }
        }
        XCTAssertEqual(blocks, 272)
        XCTAssertTrue(bad.isEmpty, "code point blocks differing from HF: \(bad.joined(separator: " "))")
    }

    // MARK: Vocabulary files

    func testMissingVocabFile() {
        let path = tempFile(nil)
        XCTAssertThrowsError(try WordPieceTokenizer(vocabFile: path)) { error in
            guard case TokenizerError.unreadableVocabulary(let p, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(p, path)
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
    }

    func testEmptyVocabFile() {
        let path = tempFile("")
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try WordPieceTokenizer(vocabFile: path)) { error in
            XCTAssertEqual(error as? TokenizerError, .emptyVocabulary(path: path))
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
    }

    func testVocabFileMissingMask() {
        let path = tempFile("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try WordPieceTokenizer(vocabFile: path)) { error in
            XCTAssertEqual(error as? TokenizerError, .missingSpecialTokens(path: path, missing: ["[MASK]"]))
            let message = "\(error)"
            XCTAssertTrue(message.contains(path) && message.contains("[MASK]"), message)
        }
        XCTAssertThrowsError(try WordPieceTokenizer(vocab: ["a", "b"])) { error in
            XCTAssertEqual(error as? TokenizerError,
                           .missingSpecialTokens(path: "<in-memory vocabulary>", missing: WordPieceTokenizer.specialTokens))
        }
    }

    func testInvalidUTF8VocabFile() throws {
        let path = tempFile(nil)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data([0x5B, 0x50, 0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try WordPieceTokenizer(vocabFile: path)) { error in
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
    }

    /// As HF (checked with transformers 5.23 / tokenizers 0.23): a duplicated token keeps the
    /// id of its LAST line, trailing whitespace and "\r" are trimmed, a final newline adds nothing.
    func testVocabularyParsingLikeHuggingFace() throws {
        let path = tempFile("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\nab\n##b\na\nc \n##c\nd\r\ne\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let tok = try WordPieceTokenizer(vocabFile: path)
        XCTAssertEqual(tok.vocabSize, 14)
        XCTAssertEqual(tok.id(of: "a"), 9)
        XCTAssertEqual(tok.token(of: 5), "a")
        XCTAssertEqual(tok.id(of: "c"), 10)
        XCTAssertEqual(tok.id(of: "d"), 12)
        XCTAssertNil(tok.token(of: 14))
        XCTAssertNil(tok.token(of: -1))
        XCTAssertEqual((tok.padId, tok.unkId, tok.clsId, tok.sepId, tok.maskId).0, 0)
        XCTAssertEqual([tok.unkId, tok.clsId, tok.sepId, tok.maskId], [1, 2, 3, 4])
        // Same ids as HF for "a ab abb c cc d e" and the special-token line.
        XCTAssertEqual(tok.encode("a ab abb c cc d e"), [9, 7, 7, 8, 10, 10, 11, 12, 13])
        XCTAssertEqual(tok.encode("x [MASK] y[CLS]z [mask]"), [1, 4, 1, 2, 1, 1, 1, 1])
        XCTAssertEqual(tok.encodeWithOffsets("x [MASK] y[CLS]z [mask]").map { [$0.start, $0.end] },
                       [[0, 1], [2, 8], [9, 10], [10, 15], [15, 16], [17, 18], [18, 22], [22, 23]])
    }

    func testInMemoryVocabularyAndSpecialTokenSwitch() throws {
        let vocab = ["[UNK]", "[PAD]", "[MASK]", "[CLS]", "[SEP]", "hello", "##s", "[", "]", "mask"]
        let tok = try WordPieceTokenizer(vocab: vocab)
        XCTAssertEqual([tok.padId, tok.unkId, tok.clsId, tok.sepId, tok.maskId], [1, 0, 3, 4, 2])
        XCTAssertEqual(tok.tokenize("Hellos [MASK]"), ["hello", "##s", "[MASK]"])
        let plain = try WordPieceTokenizer(vocab: vocab, recognizesSpecialTokens: false)
        XCTAssertEqual(plain.tokenize("Hellos [MASK]"), ["hello", "##s", "[", "mask", "]"])
    }

    // MARK: Behaviour

    func testBasicTokenizer() {
        // NUL and U+200B are removed without splitting the word.
        XCTAssertEqual(WordPieceTokenizer.basicTokenize("Héllo, WORLD!! naïve\tCafé\u{0}x 中文 a\u{200B}b"),
                       ["hello", ",", "world", "!", "!", "naive", "cafex", "中", "文", "ab"])
        XCTAssertEqual(WordPieceTokenizer.basicTokenize(" \t\n\r "), [])
        XCTAssertEqual(WordPieceTokenizer.basicTokenize("한"), ["\u{1112}\u{1161}\u{11AB}"])  // NFD jamo
    }

    func testLongWords() {
        let tok = Self.tokenizer
        let w100 = String(repeating: "a", count: 100), w101 = String(repeating: "a", count: 101)
        XCTAssertFalse(tok.encode(w100).contains(tok.unkId))
        XCTAssertEqual(tok.encode(w101), [tok.unkId])
        XCTAssertEqual(tok.encodeWithOffsets("x " + w101 + " y")[1].start, 2)
        XCTAssertEqual(tok.encodeWithOffsets("x " + w101 + " y")[1].end, 103)
        // The limit counts normalized scalars: 34 Hangul syllables are 102 jamo after NFD.
        XCTAssertEqual(tok.encode(String(repeating: "한", count: 34)), [tok.unkId])
    }

    func testEncodeIntoAppends() {
        let tok = Self.tokenizer
        var ids: [Int32] = [tok.clsId]
        tok.encode("the city", into: &ids)
        ids.append(tok.sepId)
        XCTAssertEqual(ids, [tok.clsId] + tok.encode("the city") + [tok.sepId])
        XCTAssertEqual(tok.encode(""), [])
    }

    /// For ordinary text, the original substring at each offset, lower-cased and with accents
    /// stripped, is the token without "##".
    func testOffsetsPointAtTheirText() throws {
        let tok = Self.tokenizer
        var texts = try referenceLines().prefix(130).map(\.text)
        texts += ["Crème brûlée at the Café in São Paulo.", "Dvořák's Ångström naïveté", "THE CITY's (ex-)mayor, 1,234.56!"]
        var checked = 0
        for text in texts {
            let scalars = Array(text.unicodeScalars)
            for piece in tok.encodeWithOffsets(text) where piece.id != tok.unkId {
                var sub = String.UnicodeScalarView()
                sub.append(contentsOf: scalars[piece.start..<piece.end])
                let folded = String(String(sub).lowercased().decomposedStringWithCanonicalMapping.unicodeScalars
                    .filter { $0.properties.generalCategory != .nonspacingMark })
                var token = tok.token(of: piece.id)!
                if token.utf8.starts(with: "##".utf8) { token = String(token.unicodeScalars.dropFirst(2)) }
                XCTAssertEqual(folded, token, "in \(text.debugDescription) at \(piece.start)..<\(piece.end)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 2000)
    }

    func testConcurrentUse() {
        let tok = Self.tokenizer
        let text = "Anarchism is a political philosophy that advocates stateless societies. Ἀθῆναι 中文"
        let expected = tok.encode(text)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<50 { XCTAssertEqual(tok.encode(text), expected) }
        }
    }
}
