// Corpus.gzip, which keeps the committed job files' records small: the system's gzip reads back
// exactly what it wrote, Corpus.forEachLine reads it line by line, and the same input always
// gives the same bytes (committed reports are compared byte for byte).

import Foundation
import TestSupport
import Text
import XCTest

final class GzipTests: XCTestCase {
    func testGzipRoundTripsThroughTheSystemGzip() throws {
        let dir = try temporaryDirectory(self)
        let text = (0..<5000).map { #"{"prompt":"line \#($0) of the café [MASK] .","p":\#(Double($0) / 7)}"# + "\n" }.joined()
        let data = Data(text.utf8)
        let z = try Corpus.gzip(data)
        XCTAssertEqual(try Corpus.gzip(data), z, "the same input gives the same bytes")
        XCTAssertLessThan(z.count, data.count / 3, "repetitive JSON lines compress")
        try z.write(to: URL(fileURLWithPath: dir + "/r.jsonl.gz"))
        let system = try TestSupport.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "gzip -dc '\(dir)/r.jsonl.gz'"])
        XCTAssertEqual(system.status, 0, system.stderr)
        XCTAssertEqual(system.stdout, text)
        var lines: [String] = []
        try Corpus.forEachLine(dir + "/r.jsonl.gz") { lines.append($0) }
        XCTAssertEqual(lines, text.split(separator: "\n").map(String.init))
        // nothing in, an empty file out
        try Corpus.gzip(Data()).write(to: URL(fileURLWithPath: dir + "/empty.gz"))
        XCTAssertEqual(try TestSupport.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "gzip -dc '\(dir)/empty.gz' | wc -c"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines), "0")
    }
}
