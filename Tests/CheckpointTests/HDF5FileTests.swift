import Checkpoint
import Foundation
import XCTest

final class HDF5FileTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("HDF5FileTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func file(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Asserts that `body` throws an HDF5Error whose one-line description contains every fragment.
    private func assertHDF5Error<T>(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                                    _ body: () throws -> T) {
        do {
            _ = try body()
            XCTFail("expected an HDF5Error containing \(fragments)", file: file, line: line)
        } catch let error as HDF5Error {
            XCTAssertFalse(error.description.contains("\n"), "multi-line: \(error)", file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(error.description.contains(fragment), "'\(error)' lacks '\(fragment)'", file: file, line: line)
            }
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
        }
    }

    func testFloatRoundTrip() throws {
        let path = file("floats.h5")
        let matrix: [Float] = (0..<24).map { Float($0) * 0.5 - 3 }
        let deepName = "training/adam_m/bert.embeddings.word_embeddings.weight"
        do {
            let h5 = try HDF5File.create(path)
            try matrix.withUnsafeBufferPointer { try h5.write("w", floats: $0, shape: [2, 3, 4]) }
            try [Float(2.5)].withUnsafeBufferPointer { try h5.write("loss", floats: $0, shape: []) }
            try matrix.withUnsafeBufferPointer { try h5.write(deepName, floats: $0, shape: [4, 6]) }
            try [Float]().withUnsafeBufferPointer { try h5.write("/a/b/c/empty", floats: $0, shape: [0, 3]) }
            h5.close()
            h5.close()  // idempotent
        }
        let h5 = try HDF5File.open(path)
        XCTAssertEqual(h5.path, path)
        let w = try h5.readFloats("w")
        XCTAssertEqual(w.shape, [2, 3, 4])
        XCTAssertEqual(w.values, matrix)
        let loss = try h5.readFloats("loss")
        XCTAssertEqual(loss.shape, [])
        XCTAssertEqual(loss.values, [2.5])
        XCTAssertEqual(try h5.shape(of: deepName), [4, 6])
        var buffer = [Float](repeating: 0, count: 24)
        try buffer.withUnsafeMutableBufferPointer { try h5.readFloats(deepName, into: $0, shape: [4, 6]) }
        XCTAssertEqual(buffer, matrix)
        let empty = try h5.readFloats("a/b/c/empty")
        XCTAssertEqual(empty.shape, [0, 3])
        XCTAssertEqual(empty.values, [])
        XCTAssertTrue(h5.contains("training/adam_m"))
        XCTAssertTrue(h5.contains("/a/b/c/"))
        XCTAssertTrue(h5.contains(""))
    }

    func testDoublesInt64sAndBytesRoundTrip() throws {
        let path = file("mixed.h5")
        let doubles = [1.0, -2.5, .pi, 1e300, 0, 7]
        let ints: [Int64] = [0, -1, .max, .min, 42, 7]
        let bytes: [UInt8] = Array(0...255)
        do {
            let h5 = try HDF5File.create(path)
            try h5.write("d/values", doubles: doubles, shape: [3, 2])
            try h5.write("d/scalar", doubles: [0.125], shape: [])
            try h5.write("i/values", int64s: ints, shape: [6])
            try h5.write("i/step", int64s: [1234], shape: [])
            try h5.write("blob", bytes: bytes)
            try h5.write("noblob", bytes: [])
            try h5.flush()
        }  // deinit closes
        let h5 = try HDF5File.open(path)
        XCTAssertEqual(try h5.readDoubles("d/values").shape, [3, 2])
        XCTAssertEqual(try h5.readDoubles("d/values").values, doubles)
        XCTAssertEqual(try h5.readDoubles("d/scalar").shape, [])
        XCTAssertEqual(try h5.readDoubles("d/scalar").values, [0.125])
        let floats = try h5.readFloats("d/values")  // float64 converted to Float
        XCTAssertEqual(floats.values, doubles.map { Float($0) })
        XCTAssertEqual(try h5.readInt64s("i/values").values, ints)
        XCTAssertEqual(try h5.readInt64s("i/step").values, [1234])
        XCTAssertEqual(try h5.readBytes("blob"), bytes)
        XCTAssertEqual(try h5.shape(of: "blob"), [256])
        XCTAssertEqual(try h5.readBytes("noblob"), [])
        assertHDF5Error(["dataset 'i/values' holds integer data, expected float"]) { try h5.readFloats("i/values") }
        assertHDF5Error(["dataset 'd/values' holds float data, expected integer"]) { try h5.readInt64s("d/values") }
    }

    func testAttributes() throws {
        let path = file("attrs.h5")
        do {
            let h5 = try HDF5File.create(path)
            try h5.write("g/x", doubles: [1], shape: [1])
            try h5.setAttribute("model", string: "bert-tiny")
            try h5.setAttribute("empty", string: "")
            try h5.setAttribute("unicode", string: "héllo → wörld")
            try h5.setAttribute("step", int: -9_000_000_000)
            try h5.setAttribute("lr", double: 3e-4)
            try h5.setAttribute("step", int: 17)  // replaces
            try h5.setAttribute("kind", string: "group", on: "g")
            try h5.setAttribute("scale", double: 0.5, on: "/g/x")
            assertHDF5Error(["attrs.h5", "object 'nope' not found"]) { try h5.setAttribute("k", int: 1, on: "nope") }
        }
        let h5 = try HDF5File.open(path)
        XCTAssertEqual(try h5.stringAttribute("model"), "bert-tiny")
        XCTAssertEqual(try h5.stringAttribute("empty"), "")
        XCTAssertEqual(try h5.stringAttribute("unicode"), "héllo → wörld")
        XCTAssertEqual(try h5.intAttribute("step"), 17)
        XCTAssertEqual(try h5.doubleAttribute("lr"), 3e-4)
        XCTAssertEqual(try h5.doubleAttribute("step"), 17)  // integers read as Double too
        XCTAssertEqual(try h5.stringAttribute("kind", on: "g"), "group")
        XCTAssertEqual(try h5.doubleAttribute("scale", on: "g/x"), 0.5)
        XCTAssertTrue(h5.hasAttribute("model"))
        XCTAssertTrue(h5.hasAttribute("scale", on: "g/x"))
        XCTAssertFalse(h5.hasAttribute("scale"))
        XCTAssertFalse(h5.hasAttribute("scale", on: "missing/object"))
        assertHDF5Error(["attrs.h5", "attribute 'missing' on root not found"]) { try h5.intAttribute("missing") }
        assertHDF5Error(["attribute 'model' on root holds string data"]) { try h5.intAttribute("model") }
        assertHDF5Error(["attribute 'lr' on root is not a string"]) { try h5.stringAttribute("lr") }
    }

    func testListingAndContains() throws {
        let path = file("tree.h5")
        let h5 = try HDF5File.create(path)
        try h5.write("top", int64s: [1], shape: [1])
        try h5.write("model/bert.encoder.layer.0.weight", doubles: [1, 2], shape: [2])
        try h5.write("model/bert.encoder.layer.1.weight", doubles: [1, 2], shape: [2])
        try h5.write("model/a.bias", doubles: [1], shape: [])
        // Groups holding only other groups, nested 3 deep.
        try h5.write("outer/middle/inner/leaf", int64s: [5], shape: [])
        try h5.write("model/sub/x", int64s: [5], shape: [])

        XCTAssertEqual(try h5.datasetNames(in: ""), ["top"])
        XCTAssertEqual(try h5.datasetNames(in: "/"), ["top"])
        XCTAssertEqual(try h5.groupNames(in: ""), ["model", "outer"])
        XCTAssertEqual(try h5.datasetNames(in: "model"),
                       ["a.bias", "bert.encoder.layer.0.weight", "bert.encoder.layer.1.weight"])
        XCTAssertEqual(try h5.groupNames(in: "model"), ["sub"])
        XCTAssertEqual(try h5.datasetNames(in: "outer"), [])
        XCTAssertEqual(try h5.groupNames(in: "outer"), ["middle"])
        XCTAssertEqual(try h5.groupNames(in: "outer/middle"), ["inner"])
        XCTAssertEqual(try h5.datasetNames(in: "outer/middle/inner"), ["leaf"])
        XCTAssertEqual(try h5.readInt64s("outer/middle/inner/leaf").values, [5])

        XCTAssertTrue(h5.contains("outer/middle"))
        XCTAssertTrue(h5.contains("model/a.bias"))
        XCTAssertFalse(h5.contains("model/a"))
        XCTAssertFalse(h5.contains("no/such/path"))
        XCTAssertFalse(h5.contains("top/below"))  // below a dataset
        XCTAssertFalse(h5.contains("a//b"))
        assertHDF5Error(["tree.h5", "group 'nope' not found"]) { try h5.groupNames(in: "nope") }
        assertHDF5Error(["'top' is not a group"]) { try h5.datasetNames(in: "top") }
        assertHDF5Error(["'outer/middle' is a group, not a dataset"]) { try h5.readInt64s("outer/middle") }
        assertHDF5Error(["dataset 'top' already exists"]) { try h5.write("top", int64s: [1], shape: [1]) }
        assertHDF5Error(["invalid name 'a//b'"]) { try h5.write("a//b", int64s: [1], shape: [1]) }
        assertHDF5Error(["shape [2, 2] does not match 3 values"]) { try h5.write("bad", int64s: [1, 2, 3], shape: [2, 2]) }
        h5.close()
        assertHDF5Error(["tree.h5: file is closed"]) { try h5.shape(of: "top") }
        XCTAssertFalse(h5.contains("top"))
    }

    func testShapeMismatchNamesDatasetAndShapes() throws {
        let path = file("shape.h5")
        let h5 = try HDF5File.create(path)
        try [Float](repeating: 1, count: 6).withUnsafeBufferPointer { try h5.write("enc.w", floats: $0, shape: [2, 3]) }
        var buffer = [Float](repeating: 0, count: 6)
        assertHDF5Error(["shape.h5: dataset 'enc.w' has shape [2, 3], expected [3, 2]"]) {
            try buffer.withUnsafeMutableBufferPointer { try h5.readFloats("enc.w", into: $0, shape: [3, 2]) }
        }
        var small = [Float](repeating: 0, count: 5)
        assertHDF5Error(["buffer for dataset 'enc.w' holds 5 values"]) {
            try small.withUnsafeMutableBufferPointer { try h5.readFloats("enc.w", into: $0, shape: [2, 3]) }
        }
    }

    func testMissingDatasetIsNamed() throws {
        let path = file("missing.h5")
        let h5 = try HDF5File.create(path)
        try h5.write("x", doubles: [1], shape: [])
        let name = "bert.embeddings.word_embeddings.weight"
        assertHDF5Error(["missing.h5: dataset '\(name)' not found"]) { try h5.readFloats(name) }
        assertHDF5Error(["dataset 'a/b/c' not found"]) { try h5.shape(of: "a/b/c") }
        assertHDF5Error(["dataset 'x/y' not found"]) { try h5.readDoubles("x/y") }
        assertHDF5Error(["dataset '' not found"]) { try h5.readBytes("") }
    }

    func testMissingFile() {
        let path = file("does-not-exist.h5")
        assertHDF5Error(["\(path): no such file"]) { try HDF5File.open(path) }
        let nested = file("no/such/dir/x.h5")
        assertHDF5Error(["\(nested): cannot create file"]) { try HDF5File.create(nested) }
    }

    func testNonHDF5File() throws {
        let path = file("notes.h5")
        try "this is plain text, not HDF5\n".write(toFile: path, atomically: true, encoding: .utf8)
        assertHDF5Error(["\(path): not an HDF5 file"]) { try HDF5File.open(path) }
        let emptyPath = file("empty.h5")
        _ = FileManager.default.createFile(atPath: emptyPath, contents: Data())
        assertHDF5Error(["\(emptyPath): not an HDF5 file"]) { try HDF5File.open(emptyPath) }
    }

    func testTruncatedFile() throws {
        let path = file("truncated.h5")
        let names = (0..<8).map { "layer.\($0)/weight" }
        do {
            let h5 = try HDF5File.create(path)
            let values = (0..<131_072).map { Float($0) }  // 512 KiB per dataset, 4 MiB in all
            for name in names {
                try values.withUnsafeBufferPointer { try h5.write(name, floats: $0, shape: [256, 512]) }
            }
            try h5.setAttribute("note", string: "complete")
        }
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber).uint64Value
        XCTAssertGreaterThan(size, 4_000_000)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: size / 2)
        try handle.close()

        let h5: HDF5File
        do {
            h5 = try HDF5File.open(path)
        } catch let error as HDF5Error {
            XCTAssertTrue(error.description.hasPrefix("\(path): "), "\(error)")
            return
        }
        // If the library lets the file open, every read must fail cleanly.
        for name in names {
            XCTAssertThrowsError(try h5.readFloats(name)) { XCTAssertTrue($0 is HDF5Error, "\($0)") }
        }
    }
}
