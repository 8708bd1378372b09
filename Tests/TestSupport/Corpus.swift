// Small real-text corpora for tests, cut from the shared Wikipedia shard (read in place).

import Foundation
import XCTest

public enum TestData {
    /// ../shared/data relative to the repository (CI always has it).
    public static var sharedData: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data").path
    }
    public static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }
    /// The tokenizer fixture vocabulary (a small WordPiece vocab learned from Wikipedia text).
    public static var fixtureVocab: String { repoRoot + "/Tests/TextTests/Fixtures/vocab.txt" }

    /// Write the first `bytes` of Wikipedia shard 0 (whole lines) to `dir/corpus.txt`.
    public static func wikiSample(bytes: Int, in dir: String) throws -> String {
        let shard = sharedData + "/wiki_en/enwiki2015_wikiextractor_shard0.txt.gz"
        guard FileManager.default.fileExists(atPath: shard) else { throw XCTSkip("no \(shard)") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "gzip -dc '\(shard)' | head -c \(bytes) > '\(dir)/corpus.txt'"]
        try p.run(); p.waitUntilExit()
        return dir + "/corpus.txt"
    }
}
