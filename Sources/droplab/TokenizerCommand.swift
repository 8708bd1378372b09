import ArgumentParser
import Checkpoint
import Foundation
import Text
import Training

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenizer", abstract: "WordPiece vocabularies.",
                                                    subcommands: [Train.self, Encode.self])

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "train", abstract: "Learn a WordPiece vocabulary from a corpus.")
        @Option(help: "Vocabulary size (including the 5 special tokens).") var vocabSize = 8192
        @Argument(help: "Corpus files or directories (.txt or .gz).") var corpus: [String]
        @Option(help: "Output vocab.txt.") var out: String
        func run() throws {
            try Check.range(vocabSize, 64...(1 << 20), "vocab-size")
            try AtomicFile.checkWritableDirectory((out as NSString).deletingLastPathComponent.isEmpty ? "." : (out as NSString).deletingLastPathComponent, flag: "--out")
            let files = try Corpus.files(corpus)
            let start = Date()
            var counts = WordCounts()
            for f in files { try Corpus.forEachDocument(f) { counts.add($0) } }
            let vocab = VocabTrainer.trainVocabulary(counts: counts, vocabSize: vocabSize, log: log)
            try WordPieceTokenizer.writeVocabulary(vocab, to: out)
            log(String(format: "wrote %d tokens to %@ (%.1fs)", vocab.count, out, Date().timeIntervalSince(start)))
        }
    }

    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "encode", abstract: "Print the WordPiece tokens and ids of a text.")
        @Option(help: "vocab.txt") var vocab: String
        @Argument(help: "Text to encode.") var text: String
        func run() throws {
            let tok = try WordPieceTokenizer(vocabFile: vocab)
            let ids = tok.encode(text)
            print(ids.map { "\(tok.token(of: $0) ?? "?")/\($0)" }.joined(separator: " "))
        }
    }
}
