// The committed study reports regenerate byte for byte from the job files committed beside
// them (reports/<recipe>-jobs/, written by `droplab report --save-jobs`), on a machine without
// any checkpoint: every file of `droplab report recipes/<recipe>.toml --jobs reports/<recipe>-jobs`
// equals the committed one. Also on a machine without AVX512-BF16 (oneDNN capped at AVX2 here):
// a study whose pretraining ran in bf16 is still read and reported there.

import Foundation
import TestSupport
import XCTest

final class CommittedReportTests: XCTestCase {
    /// The studies whose reports are committed from real runs, and whether each is complete
    /// (a study that runs over several sessions is committed job by job, its report partial).
    let committed = ["quick": true, "synthetic-tiny": true, "facts": false, "synthetic": false, "smoke": true]

    func testCommittedReportsRegenerateFromTheirJobFiles() throws {
        let repo = TestData.repoRoot, fm = FileManager.default
        let kept = try fm.contentsOfDirectory(atPath: repo + "/reports").filter { $0.hasSuffix("-jobs") }.map { String($0.dropLast(5)) }
        XCTAssertEqual(Set(kept), Set(committed.keys), "reports/*-jobs directories")
        // the per-unit records, most of the bytes, are committed gzip-compressed (report --save-jobs)
        let plain = try fm.subpathsOfDirectory(atPath: repo + "/reports").filter { $0.hasSuffix(".jsonl") && !$0.hasSuffix("/metrics.jsonl") }
        XCTAssertEqual(plain, [], "uncompressed records under reports/")
        for (name, complete) in committed.sorted(by: { $0.key < $1.key }) {
            let out = try temporaryDirectory(self)
            let r = try runDroplab(["report", "recipes/\(name).toml", "--root", out + "/no-checkpoints", "--jobs", "reports/\(name)-jobs",
                                    "--out", out], cwd: repo, environment: ["ONEDNN_MAX_CPU_ISA": "AVX2"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let files = try fm.contentsOfDirectory(atPath: out).filter { $0.hasPrefix(name) && !$0.hasSuffix("-jobs") }.sorted()
            XCTAssertTrue(files.contains("\(name).md"), "\(files)")
            let md = try String(contentsOfFile: out + "/\(name).md", encoding: .utf8)
            if complete { XCTAssertFalse(md.contains("missing"), "the committed \(name) study is complete") }
            for f in files {
                let fresh = try Data(contentsOf: URL(fileURLWithPath: out + "/" + f))
                let stored = try Data(contentsOf: URL(fileURLWithPath: repo + "/reports/" + f))
                XCTAssertEqual(fresh, stored, "reports/\(f) differs from what its job files give")
            }
        }
    }
}
