import CHDF5
import Foundation

/// A failed HDF5 operation. `description` is one line naming the file and the problem,
/// e.g. `checkpoints/x.h5: dataset 'loss' not found`.
public struct HDF5Error: Error, CustomStringConvertible {
    public let description: String

    init(_ path: String, _ problem: String) { description = "\(path): \(problem)" }
}

/// An HDF5 file holding n-dimensional numeric datasets and scalar attributes.
///
/// Datasets and groups are addressed by '/'-separated paths relative to the root
/// ("" or "/" is the root itself); link names may contain dots. Writing a dataset creates
/// any missing intermediate groups. Shape `[]` denotes a scalar dataset.
///
/// - Important: Not thread-safe. The HDF5 library in use is built without thread-safety,
///   so no two threads may call into any `HDF5File` (the same one or different ones) at
///   the same time. Serialize all HDF5 work, e.g. on one thread or behind one lock.
public final class HDF5File {
    public let path: String
    private var id: hid_t

    private init(path: String, id: hid_t) {
        self.path = path
        self.id = id
    }

    deinit { close() }

    /// Creates (or truncates) `path` for writing.
    public static func create(_ path: String) throws -> HDF5File {
        try make(path, failure: "cannot create file (missing directory or no permission?)") { fapl in
            H5Fcreate(path, dl_H5F_ACC_TRUNC(), dl_H5P_DEFAULT(), fapl)
        }
    }

    /// Opens an existing HDF5 file read-only.
    public static func open(_ path: String) throws -> HDF5File {
        dl_H5_silence_errors()
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw HDF5Error(path, "no such file") }
        guard !isDir.boolValue else { throw HDF5Error(path, "is a directory, not an HDF5 file") }
        guard H5Fis_hdf5(path) > 0 else { throw HDF5Error(path, "not an HDF5 file") }
        return try make(path, failure: "cannot open file (truncated or corrupt?)") { fapl in
            H5Fopen(path, dl_H5F_ACC_RDONLY(), fapl)
        }
    }

    private static func make(_ path: String, failure: String, _ openFile: (_ fapl: hid_t) -> hid_t) throws -> HDF5File {
        dl_H5_silence_errors()
        let fapl = H5Pcreate(dl_H5P_FILE_ACCESS())
        defer { if fapl >= 0 { H5Pclose(fapl) } }
        // Strong close degree: closing the file also closes anything still open in it.
        guard fapl >= 0, H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0 else {
            throw HDF5Error(path, "cannot set up file access properties")
        }
        let id = openFile(fapl)
        guard id >= 0 else { throw HDF5Error(path, failure) }
        return HDF5File(path: path, id: id)
    }

    /// Closes the file (flushing pending writes). Safe to call more than once.
    public func close() {
        if id >= 0 { H5Fclose(id) }
        id = -1
    }

    /// Flushes and closes the file, reporting failure (e.g. a full disk): a written file is
    /// complete only when this succeeds.
    public func finish() throws {
        try flush()
        let status = H5Fclose(try file())
        id = -1
        guard status >= 0 else { throw fail("cannot close file (disk full?)") }
    }

    /// Writes buffered data to disk; unlike `close()`, reports failure (e.g. disk full).
    public func flush() throws {
        try check(H5Fflush(try file(), H5F_SCOPE_GLOBAL), "cannot flush file to disk")
    }

    // MARK: Datasets

    public func write(_ name: String, floats: UnsafeBufferPointer<Float>, shape: [Int]) throws {
        try writeDataset(name, as: dl_H5T_NATIVE_FLOAT(), shape: shape, count: floats.count, floats.baseAddress)
    }

    public func write(_ name: String, doubles: [Double], shape: [Int]) throws {
        try writeArray(name, doubles, as: dl_H5T_NATIVE_DOUBLE(), shape: shape)
    }

    public func write(_ name: String, int64s: [Int64], shape: [Int]) throws {
        try writeArray(name, int64s, as: dl_H5T_NATIVE_INT64(), shape: shape)
    }

    /// Writes a 1-D uint8 dataset.
    public func write(_ name: String, bytes: [UInt8]) throws {
        try writeArray(name, bytes, as: dl_H5T_NATIVE_UINT8(), shape: [bytes.count])
    }

    public func shape(of name: String) throws -> [Int] {
        try withDataset(name) { _, shape in shape }
    }

    /// Whether a dataset or group exists at `name`. Never fails: each path component is
    /// checked in turn, so missing intermediate groups just give `false`.
    public func contains(_ name: String) -> Bool {
        guard let file = try? file(), let parts = try? components(name) else { return false }
        for depth in parts.indices {
            guard H5Lexists(file, "/" + parts[...depth].joined(separator: "/"), dl_H5P_DEFAULT()) > 0 else { return false }
        }
        return H5Oexists_by_name(file, hdfPath(parts), dl_H5P_DEFAULT()) > 0
    }

    /// Reads a float32 or float64 dataset as `Float`.
    public func readFloats(_ name: String) throws -> (shape: [Int], values: [Float]) {
        try readDataset(name, as: dl_H5T_NATIVE_FLOAT(), H5T_FLOAT)
    }

    /// Reads a float32 or float64 dataset into `buffer`, which must hold exactly the
    /// elements of `expected`; fails if the stored shape differs from `expected`.
    public func readFloats(_ name: String, into buffer: UnsafeMutableBufferPointer<Float>, shape expected: [Int]) throws {
        try withDataset(name) { dataset, shape in
            guard shape == expected else {
                throw fail("dataset '\(name)' has shape \(shape), expected \(expected)")
            }
            let count = shape.reduce(1, *)
            guard buffer.count == count else {
                throw fail("buffer for dataset '\(name)' holds \(buffer.count) values, shape \(shape) needs \(count)")
            }
            try read(dataset, name, as: dl_H5T_NATIVE_FLOAT(), H5T_FLOAT, into: UnsafeMutableRawPointer(buffer.baseAddress))
        }
    }

    public func readDoubles(_ name: String) throws -> (shape: [Int], values: [Double]) {
        try readDataset(name, as: dl_H5T_NATIVE_DOUBLE(), H5T_FLOAT)
    }

    public func readInt64s(_ name: String) throws -> (shape: [Int], values: [Int64]) {
        try readDataset(name, as: dl_H5T_NATIVE_INT64(), H5T_INTEGER)
    }

    /// Reads an integer dataset of any shape as flat bytes (out-of-range values are clamped).
    public func readBytes(_ name: String) throws -> [UInt8] {
        try readDataset(name, as: dl_H5T_NATIVE_UINT8(), H5T_INTEGER).values
    }

    /// Names of the datasets directly inside `group` ("" or "/" is the root), sorted.
    public func datasetNames(in group: String) throws -> [String] {
        try children(of: group, ofType: H5I_DATASET)
    }

    /// Names of the groups directly inside `group` ("" or "/" is the root), sorted.
    public func groupNames(in group: String) throws -> [String] {
        try children(of: group, ofType: H5I_GROUP)
    }

    // MARK: Attributes

    /// Sets a fixed-length UTF-8 string attribute (h5py reads it as bytes).
    public func setAttribute(_ key: String, string: String, on object: String = "") throws {
        let bytes = string.isEmpty ? [0] : Array(string.utf8)  // HDF5 strings need size >= 1
        let type = try check(H5Tcopy(dl_H5T_C_S1()), "cannot create string type")
        defer { H5Tclose(type) }
        guard H5Tset_size(type, bytes.count) >= 0, H5Tset_strpad(type, H5T_STR_NULLPAD) >= 0,
              H5Tset_cset(type, H5T_CSET_UTF8) >= 0 else { throw fail("cannot create string type") }
        try writeAttribute(key, on: object, as: type, bytes)
    }

    public func setAttribute(_ key: String, int: Int64, on object: String = "") throws {
        var value = int
        try writeAttribute(key, on: object, as: dl_H5T_NATIVE_INT64(), &value)
    }

    public func setAttribute(_ key: String, double: Double, on object: String = "") throws {
        var value = double
        try writeAttribute(key, on: object, as: dl_H5T_NATIVE_DOUBLE(), &value)
    }

    /// Reads a fixed-length or variable-length (h5py's default for `str`) string attribute.
    public func stringAttribute(_ key: String, on object: String = "") throws -> String {
        try withAttribute(key, on: object) { attribute, type, what in
            guard H5Tget_class(type) == H5T_STRING else { throw fail("\(what) is not a string") }
            if H5Tis_variable_str(type) > 0 {
                let memType = try check(H5Tcopy(dl_H5T_C_S1()), "cannot create string type")
                defer { H5Tclose(memType) }
                guard H5Tset_size(memType, dl_H5T_VARIABLE()) >= 0,
                      H5Tset_cset(memType, H5Tget_cset(type)) >= 0 else { throw fail("cannot create string type") }
                var chars: UnsafeMutablePointer<CChar>? = nil
                try check(H5Aread(attribute, memType, &chars), "cannot read \(what) (file truncated or corrupt?)")
                defer { H5free_memory(chars) }
                return chars.map { String(cString: $0) } ?? ""
            }
            let size = Int(exactly: H5Tget_size(type)) ?? .max
            guard size > 0 else { throw fail("cannot read \(what) (file truncated or corrupt?)") }
            try checkAllocatable([size], "\(what) has implausible size \(size)")
            var bytes = [UInt8](repeating: 0, count: size)
            try check(H5Aread(attribute, type, &bytes), "cannot read \(what) (file truncated or corrupt?)")
            // Fixed-length strings are padded with NULs, or with spaces for SPACEPAD.
            var end = bytes.firstIndex(of: 0) ?? bytes.count
            if H5Tget_strpad(type) == H5T_STR_SPACEPAD {
                while end > 0 && bytes[end - 1] == 0x20 { end -= 1 }
            }
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
    }

    public func intAttribute(_ key: String, on object: String = "") throws -> Int64 {
        try readAttribute(key, on: object, as: dl_H5T_NATIVE_INT64(), from: [H5T_INTEGER], initial: 0)
    }

    /// Reads a floating-point or integer attribute as `Double`.
    public func doubleAttribute(_ key: String, on object: String = "") throws -> Double {
        try readAttribute(key, on: object, as: dl_H5T_NATIVE_DOUBLE(), from: [H5T_FLOAT, H5T_INTEGER], initial: 0)
    }

    public func hasAttribute(_ key: String, on object: String = "") -> Bool {
        guard let handle = try? openObject(object) else { return false }
        defer { H5Oclose(handle) }
        return H5Aexists(handle, key) > 0
    }

    // MARK: Helpers

    private func fail(_ problem: String) -> HDF5Error { HDF5Error(path, problem) }

    /// Throws `problem` if an HDF5 call returned a negative (failure) value.
    @discardableResult
    private func check<T: BinaryInteger>(_ result: T, _ problem: @autoclosure () -> String) throws -> T {
        guard result >= 0 else { throw fail(problem()) }
        return result
    }

    /// The open file's id. Also re-silences HDF5's error printing, which is per-thread
    /// in thread-safe HDF5 builds.
    private func file() throws -> hid_t {
        guard id >= 0 else { throw fail("file is closed") }
        dl_H5_silence_errors()
        return id
    }

    /// Splits a '/'-separated path into link names; "" and "/" (the root) give none.
    private func components(_ name: String) throws -> [Substring] {
        let trimmed = name.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard !trimmed.isEmpty else { return [] }
        let parts = trimmed.split(separator: "/", omittingEmptySubsequences: false)
        guard !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw fail("invalid name '\(name)'")
        }
        return parts
    }

    private func hdfPath(_ parts: [Substring]) -> String { "/" + parts.joined(separator: "/") }

    private func describe(_ object: String) -> String {
        object.trimmingCharacters(in: CharacterSet(charactersIn: "/")).isEmpty ? "root" : "'\(object)'"
    }

    private func describe(_ typeClass: H5T_class_t) -> String {
        switch typeClass {
        case H5T_INTEGER: return "integer"
        case H5T_FLOAT: return "float"
        case H5T_STRING: return "string"
        default: return "non-numeric"
        }
    }

    /// The dimensions of `space`, checked to be allocatable (as 8-byte values).
    private func shape(ofSpace space: hid_t, _ what: @autoclosure () -> String) throws -> [Int] {
        let rank = try check(H5Sget_simple_extent_ndims(space), "cannot read shape of \(what())")
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        try check(H5Sget_simple_extent_dims(space, &dims, nil), "cannot read shape of \(what())")
        let shape = dims.map { Int(exactly: $0) ?? .max }
        try checkAllocatable(shape + [8], "\(what()) has implausible shape \(dims)")
        return shape
    }

    /// Guards allocations sized by (possibly corrupt) file metadata: Swift traps rather
    /// than throwing when an allocation fails.
    private func checkAllocatable(_ factors: [Int], _ problem: @autoclosure () -> String) throws {
        var bytes = 1
        for factor in factors {
            let (product, overflow) = bytes.multipliedReportingOverflow(by: factor)
            guard !overflow else { throw fail("\(problem()) (file truncated or corrupt?)") }
            bytes = product
        }
        guard bytes <= ProcessInfo.processInfo.physicalMemory else { throw fail("\(problem()) (file truncated or corrupt?)") }
    }

    /// The type (group, dataset, ...) of the object at `name` relative to `location`, or
    /// nil if it cannot be opened (e.g. a dangling soft link).
    private func objectType(_ location: hid_t, _ name: String) -> H5I_type_t? {
        let object = H5Oopen(location, name, dl_H5P_DEFAULT())
        guard object >= 0 else { return nil }
        defer { H5Oclose(object) }
        return H5Iget_type(object)
    }

    /// Opens the object (group or dataset) at `object`; the caller closes it.
    private func openObject(_ object: String) throws -> hid_t {
        let file = try file()
        let parts = try components(object)
        guard contains(object) else { throw fail("object '\(object)' not found") }
        return try check(H5Oopen(file, hdfPath(parts), dl_H5P_DEFAULT()),
                         "cannot open \(describe(object)) (file truncated or corrupt?)")
    }

    /// Runs `body` with the open dataset at `name` and its shape.
    private func withDataset<R>(_ name: String, _ body: (_ dataset: hid_t, _ shape: [Int]) throws -> R) throws -> R {
        let file = try file()
        let parts = try components(name)
        guard !parts.isEmpty, contains(name) else { throw fail("dataset '\(name)' not found") }
        let dataset = H5Dopen2(file, hdfPath(parts), dl_H5P_DEFAULT())
        guard dataset >= 0 else {
            throw fail(objectType(file, hdfPath(parts)) == H5I_GROUP ? "'\(name)' is a group, not a dataset"
                       : "cannot open dataset '\(name)' (file truncated or corrupt?)")
        }
        defer { H5Dclose(dataset) }
        let space = try check(H5Dget_space(dataset), "cannot open dataset '\(name)' (file truncated or corrupt?)")
        defer { H5Sclose(space) }
        return try body(dataset, try shape(ofSpace: space, "dataset '\(name)'"))
    }

    /// Reads all of `dataset` into `buffer` as `memType`, requiring storage class `stored`.
    private func read(_ dataset: hid_t, _ name: String, as memType: hid_t, _ stored: H5T_class_t,
                      into buffer: UnsafeMutableRawPointer?) throws {
        let type = try check(H5Dget_type(dataset), "cannot read dataset '\(name)' (file truncated or corrupt?)")
        defer { H5Tclose(type) }
        let typeClass = H5Tget_class(type)
        guard typeClass == stored else {
            throw fail("dataset '\(name)' holds \(describe(typeClass)) data, expected \(describe(stored))")
        }
        guard let buffer else { return }  // no elements
        try check(H5Dread(dataset, memType, dl_H5S_ALL(), dl_H5S_ALL(), dl_H5P_DEFAULT(), buffer),
                  "cannot read dataset '\(name)' (file truncated or corrupt?)")
    }

    private func readDataset<T>(_ name: String, as memType: hid_t, _ stored: H5T_class_t) throws -> (shape: [Int], values: [T]) {
        try withDataset(name) { dataset, shape in
            let count = shape.reduce(1, *)
            let values = try [T](unsafeUninitializedCapacity: count) { buffer, initialized in
                try read(dataset, name, as: memType, stored, into: UnsafeMutableRawPointer(buffer.baseAddress))
                initialized = count
            }
            return (shape, values)
        }
    }

    private func writeArray<T>(_ name: String, _ values: [T], as memType: hid_t, shape: [Int]) throws {
        try values.withUnsafeBufferPointer { buffer in
            try writeDataset(name, as: memType, shape: shape, count: buffer.count, buffer.baseAddress)
        }
    }

    /// Creates dataset `name` (and missing parent groups) with element type `memType` and
    /// writes `count` values from `data`.
    private func writeDataset(_ name: String, as memType: hid_t, shape: [Int], count: Int,
                              _ data: UnsafeRawPointer?) throws {
        let file = try file()
        let parts = try components(name)
        guard !parts.isEmpty else { throw fail("invalid dataset name '\(name)'") }
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == count else {
            throw fail("dataset '\(name)': shape \(shape) does not match \(count) values")
        }
        guard !contains(name) else { throw fail("dataset '\(name)' already exists") }
        var dims = shape.map { hsize_t($0) }
        let space = try check(shape.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(dims.count), &dims, nil),
                              "cannot create dataspace for dataset '\(name)'")
        defer { H5Sclose(space) }
        let linkProperties = try check(H5Pcreate(dl_H5P_LINK_CREATE()), "cannot create dataset '\(name)'")
        defer { H5Pclose(linkProperties) }
        try check(H5Pset_create_intermediate_group(linkProperties, 1), "cannot create dataset '\(name)'")
        let dataset = try check(H5Dcreate2(file, hdfPath(parts), memType, space, linkProperties,
                                           dl_H5P_DEFAULT(), dl_H5P_DEFAULT()),
                                "cannot create dataset '\(name)'")
        defer { H5Dclose(dataset) }
        if count > 0 {
            try check(H5Dwrite(dataset, memType, dl_H5S_ALL(), dl_H5S_ALL(), dl_H5P_DEFAULT(), data),
                      "cannot write dataset '\(name)'")
        }
    }

    /// Names of the direct children of `group` whose HDF5 object type is `type`, sorted.
    private func children(of group: String, ofType type: H5I_type_t) throws -> [String] {
        let file = try file()
        let parts = try components(group)
        guard contains(group) else { throw fail("group '\(group)' not found") }
        let handle = try check(H5Gopen2(file, hdfPath(parts), dl_H5P_DEFAULT()), "\(describe(group)) is not a group")
        defer { H5Gclose(handle) }
        let unreadable = "cannot list group \(describe(group)) (file truncated or corrupt?)"
        var info = H5G_info_t()
        try check(H5Gget_info(handle, &info), unreadable)
        var names: [String] = []
        for index in 0..<info.nlinks {
            let length = try check(H5Lget_name_by_idx(handle, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0,
                                                      dl_H5P_DEFAULT()), unreadable)
            var chars = [CChar](repeating: 0, count: Int(length) + 1)
            try check(H5Lget_name_by_idx(handle, ".", H5_INDEX_NAME, H5_ITER_INC, index, &chars, chars.count,
                                         dl_H5P_DEFAULT()), unreadable)
            let name = String(decoding: chars.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if objectType(handle, name) == type { names.append(name) }
        }
        return names.sorted()
    }

    /// Runs `body` with the open single-valued attribute `key` on `object`, its type, and
    /// a description for error messages.
    private func withAttribute<R>(_ key: String, on object: String,
                                  _ body: (_ attribute: hid_t, _ type: hid_t, _ what: String) throws -> R) throws -> R {
        let what = "attribute '\(key)' on \(describe(object))"
        let handle = try openObject(object)
        defer { H5Oclose(handle) }
        guard H5Aexists(handle, key) > 0 else { throw fail("\(what) not found") }
        let unreadable = "cannot read \(what) (file truncated or corrupt?)"
        let attribute = try check(H5Aopen(handle, key, dl_H5P_DEFAULT()), unreadable)
        defer { H5Aclose(attribute) }
        let space = try check(H5Aget_space(attribute), unreadable)
        defer { H5Sclose(space) }
        guard H5Sget_simple_extent_npoints(space) == 1 else { throw fail("\(what) is not a single value") }
        let type = try check(H5Aget_type(attribute), unreadable)
        defer { H5Tclose(type) }
        return try body(attribute, type, what)
    }

    private func readAttribute<T>(_ key: String, on object: String, as memType: hid_t,
                                  from classes: [H5T_class_t], initial: T) throws -> T {
        try withAttribute(key, on: object) { attribute, type, what in
            let typeClass = H5Tget_class(type)
            guard classes.contains(typeClass) else {
                throw fail("\(what) holds \(describe(typeClass)) data, expected \(describe(classes[0]))")
            }
            var value = initial
            try check(withUnsafeMutableBytes(of: &value) { H5Aread(attribute, memType, $0.baseAddress) },
                      "cannot read \(what) (file truncated or corrupt?)")
            return value
        }
    }

    /// Creates (or replaces) scalar attribute `key` on `object` with type `type`.
    private func writeAttribute(_ key: String, on object: String, as type: hid_t, _ value: UnsafeRawPointer) throws {
        let what = "attribute '\(key)' on \(describe(object))"
        let handle = try openObject(object)
        defer { H5Oclose(handle) }
        if H5Aexists(handle, key) > 0 {
            try check(H5Adelete(handle, key), "cannot replace \(what)")
        }
        let space = try check(H5Screate(H5S_SCALAR), "cannot create \(what)")
        defer { H5Sclose(space) }
        let attribute = try check(H5Acreate2(handle, key, type, space, dl_H5P_DEFAULT(), dl_H5P_DEFAULT()),
                                  "cannot create \(what)")
        defer { H5Aclose(attribute) }
        try check(H5Awrite(attribute, type, value), "cannot write \(what)")
    }
}
