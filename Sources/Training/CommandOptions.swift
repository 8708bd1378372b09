// One validation layer per command. A command's options are one Codable struct shared by its
// command-line flags and its recipe table (keys = flag names); the struct checks its own
// fields in `validate()`, and both the CLI and the recipe loader call exactly that, so the
// two cannot drift. Errors name the flag: `--batch must be in 1...65536, got 0`.

import Autograd
import Foundation

public protocol CommandOptions: Codable {
    /// Check every field's range; throw an `OptionError` naming the flag.
    func validate() throws
}

/// One line of help per option, beside the struct that declares it: keys are the struct's
/// camelCase stored properties (a nested options struct has its own table). `droplab eval NAME
/// --help` prints these with the defaults of the same struct.
public protocol OptionHelp {
    static var help: [String: String] { get }
}

/// A bad option value. `key` is the flag / recipe key (kebab-case, "seq-len"), nil when the
/// problem involves no single option.
public struct OptionError: Error, CustomStringConvertible {
    public var key: String?
    public var problem: String
    public init(key: String?, _ problem: String) { self.key = key; self.problem = problem }
    public var description: String { key.map { "--\($0) \(problem)" } ?? problem }
}

/// Range checks with messages naming the flag.
public enum Check {
    public static func that(_ ok: Bool, _ key: String?, _ problem: @autoclosure () -> String) throws {
        if !ok { throw OptionError(key: key, problem()) }
    }
    public static func range<T: Comparable>(_ v: T, _ r: ClosedRange<T>, _ key: String) throws {
        try that(r.contains(v), key, "must be in \(r.lowerBound)...\(r.upperBound), got \(v)")
    }
    public static func optionalRange<T: Comparable>(_ v: T?, _ r: ClosedRange<T>, _ key: String) throws {
        if let v { try range(v, r, key) }
    }
    /// A probability in [0, 1).
    public static func probability(_ p: Float, _ key: String) throws {
        try that(p >= 0 && p < 1, key, "must be in [0, 1), got \(p)")
    }
    /// A finite number in a closed range.
    public static func number<T: BinaryFloatingPoint>(_ v: T, _ r: ClosedRange<T>, _ key: String) throws {
        try that(v.isFinite && r.contains(v), key, "must be in \(r.lowerBound)...\(r.upperBound), got \(v)")
    }
    public static func nonEmpty(_ s: String, _ key: String) throws {
        try that(!s.isEmpty, key, "must not be empty")
    }
    /// bf16 needs a CPU with AVX512-BF16 (no emulated fallback). A property of the machine, not
    /// of the value: checked where the products are about to run (pretraining, SQuAD finetuning,
    /// bench), not by `validate()`, so a recipe that trains in bf16 can still be read, listed and
    /// reported on a machine without it.
    public static func machineRuns(_ p: Precision?) throws {
        try that(p != .bf16 || BF16.isSupported, "precision", "bf16 needs a CPU with AVX512-BF16, which this one lacks (use fp32)")
    }

    /// Upper bounds that keep sizes far from overflow and allocation failure.
    public static let maxBatch = 65536
    public static let maxSteps = 1 << 40
}

/// Options compared for messages ("--resume with different settings", "made with other settings").
public enum Settings {
    /// The options as a JSON object (the keys are the struct's property names).
    public static func object<T: Encodable>(_ v: T) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: JSONEncoder().encode(v)) as? [String: Any] ?? [:]
    }

    /// "key old -> new" for every key whose value differs, sorted by key ("unset" for a missing one).
    public static func differences(old: [String: Any], new: [String: Any]) -> [String] {
        Set(old.keys).union(new.keys).sorted().compactMap { k in
            let (a, b) = (old[k].map { "\($0)" } ?? "unset", new[k].map { "\($0)" } ?? "unset")
            return a == b ? nil : "\(k) \(a) -> \(b)"
        }
    }
}
