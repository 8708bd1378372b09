// Checkpoint round trip (tensors, vocab, training state, optimizer moments) and bad input.

import Autograd
import BERT
@testable import Checkpoint
import Foundation
import TestSupport
import XCTest

final class CheckpointFormatTests: XCTestCase {
    let config = BertConfig(vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 32, maxPositions: 24)
    var vocab: [String] { ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (5..<40).map { "tok\($0)" } }

    func model(seed: UInt64 = 7) -> BertModel {
        let m = BertModel(config: config); m.initialize(seed: seed); return m
    }

    func snapshot(_ m: BertModel) -> TrainingSnapshot {
        let a = Storage(count: m.params.totalCount), b = Storage(count: m.params.totalCount)
        for i in 0..<a.count { a.pointer[i] = Float(i) * 1e-3; b.pointer[i] = Float(i % 17) }
        return TrainingSnapshot(stateJSON: #"{"step":12,"tokens":3456,"rng":"18446744073709551557"}"#,
                                moments: [("adam_m", a), ("adam_v", b)])
    }

    func testRoundTripIsExact() throws {
        let dir = try temporaryDirectory(self)
        let m = model(), snap = snapshot(m)
        try Checkpoint.save(m, vocab: vocab, training: snap, to: dir + "/a.h5")
        let back = try Checkpoint.load(dir + "/a.h5", moments: ["adam_m", "adam_v"])
        XCTAssertEqual(back.model.config, m.config)
        XCTAssertEqual(back.vocab, vocab)
        XCTAssertEqual(back.model.params.values.buffer.elementsEqual(m.params.values.buffer), true)
        XCTAssertEqual(back.training?.stateJSON, snap.stateJSON)
        for (k, (name, values)) in snap.moments.enumerated() {
            XCTAssertEqual(back.training?.moments[k].name, name)
            XCTAssertTrue(back.training!.moments[k].values.buffer.elementsEqual(values.buffer), name)
        }
        // no temporary files left behind
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["a.h5"])
    }

    func testEvaluatorsCanIgnoreTrainingState() throws {
        let dir = try temporaryDirectory(self)
        let m = model()
        try Checkpoint.save(m, vocab: vocab, to: dir + "/plain.h5")
        XCTAssertNil(try Checkpoint.load(dir + "/plain.h5").training)
        try Checkpoint.save(m, vocab: vocab, training: snapshot(m), to: dir + "/full.h5")
        XCTAssertTrue(try Checkpoint.load(dir + "/full.h5").model.params.values.buffer
            .elementsEqual(m.params.values.buffer))
    }

    func testSwitchingHeadKeepsEncoderAndInitialisesNewHead() throws {
        let dir = try temporaryDirectory(self)
        let m = model()
        try Checkpoint.save(m, vocab: vocab, to: dir + "/mlm.h5")
        let qa = try Checkpoint.load(dir + "/mlm.h5", head: .qa, seed: 3).model
        XCTAssertEqual(qa.head, .qa)
        XCTAssertEqual(qa.params["bert.encoder.layer.1.output.dense.weight"].values, m.params["bert.encoder.layer.1.output.dense.weight"].values)
        XCTAssertGreaterThan(qa.params["qa_outputs.weight"].values.map(abs).max()!, 0)
    }

    /// Writes a checkpoint-like file through HDF5File, optionally breaking one thing.
    func writeVariant(_ path: String, skip: String? = nil, reshape: String? = nil, version: Int64 = Checkpoint.formatVersion) throws {
        let m = model()
        let f = try HDF5File.create(path)
        try f.setAttribute("format", string: Checkpoint.format)
        try f.setAttribute("format_version", int: version)
        try f.setAttribute("config", string: try Checkpoint.configJSON(config))
        try f.setAttribute("head", string: "mlm")
        for e in m.params.entries where e.name != skip {
            let shape = e.name == reshape ? [e.count] : e.shape
            try f.write(e.name, floats: UnsafeBufferPointer(start: m.params.values.pointer + e.offset, count: e.count), shape: shape)
        }
        try f.write("tokenizer/vocab", bytes: Array((vocab.joined(separator: "\n") + "\n").utf8))
        f.close()
    }

    func assertLoadFails(_ path: String, _ needles: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Checkpoint.load(path), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"), "one line: \(text)", file: file, line: line)
            for n in needles { XCTAssertTrue(text.contains(n), "'\(text)' should mention '\(n)'", file: file, line: line) }
        }
    }

    func testBadInputsGiveOneLineErrorsNamingFileAndProblem() throws {
        let dir = try temporaryDirectory(self)
        assertLoadFails(dir + "/missing.h5", ["missing.h5", "no such file"])
        try "hello".write(toFile: dir + "/text.h5", atomically: true, encoding: .utf8)
        assertLoadFails(dir + "/text.h5", ["text.h5", "not an HDF5 file"])
        try writeVariant(dir + "/notensor.h5", skip: "bert.encoder.layer.1.attention.self.key.weight")
        assertLoadFails(dir + "/notensor.h5", ["notensor.h5", "bert.encoder.layer.1.attention.self.key.weight"])
        try writeVariant(dir + "/shape.h5", reshape: "bert.encoder.layer.0.intermediate.dense.weight")
        assertLoadFails(dir + "/shape.h5", ["shape.h5", "bert.encoder.layer.0.intermediate.dense.weight", "[32, 16]", "[512]"])
        try writeVariant(dir + "/version.h5", version: 99)
        assertLoadFails(dir + "/version.h5", ["version.h5", "format_version 99"])
        // truncated: a real checkpoint cut in half
        try Checkpoint.save(model(), vocab: vocab, training: snapshot(model()), to: dir + "/cut.h5")
        let size = try FileManager.default.attributesOfItem(atPath: dir + "/cut.h5")[.size] as! Int
        XCTAssertEqual(truncate(dir + "/cut.h5", off_t(size / 2)), 0)
        assertLoadFails(dir + "/cut.h5", ["cut.h5"])
        XCTAssertThrowsError(try BertConfig(preset: "huge", vocabSize: 10)) { XCTAssertTrue("\($0)".contains("unknown preset 'huge'")) }
    }

    func testCLIInspectAndExportBadInput() throws {
        let dir = try temporaryDirectory(self)
        try Checkpoint.save(model(), vocab: vocab, training: snapshot(model()), to: dir + "/ok.h5")
        let ok = try runDroplab(["inspect", dir + "/ok.h5"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("bert.encoder.layer.1.intermediate.dense.weight"))
        XCTAssertTrue(ok.stdout.contains("[32, 16]"))
        XCTAssertTrue(ok.stdout.contains("training state: step 12, tokens 3456"), ok.stdout)
        XCTAssertTrue(ok.stdout.contains("dropout: hidden 0.1 attention 0.1"), ok.stdout)
        assertOneLineError(try runDroplab(["inspect", dir + "/nope.h5"]), contains: ["nope.h5", "no such file"])
        try "x".write(toFile: dir + "/bad.h5", atomically: true, encoding: .utf8)
        assertOneLineError(try runDroplab(["inspect", dir + "/bad.h5"]), contains: ["bad.h5", "not an HDF5 file"])
        // export of a bad file writes nothing
        assertOneLineError(try runDroplab(["export", "hf", dir + "/bad.h5", dir + "/out"]), contains: ["bad.h5"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"))
        let ex = try runDroplab(["export", "hf", dir + "/ok.h5", dir + "/hf"])
        XCTAssertEqual(ex.status, 0, ex.stderr)
        for f in ["config.json", "model.safetensors", "vocab.txt", "parity_check.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/hf/" + f), f)
        }
    }
}
