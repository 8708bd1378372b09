// Shared test helpers: closeness checks that print the max difference and the first
// differing elements.

import XCTest

public struct Difference: CustomStringConvertible {
    public let maxAbs: Double
    public let maxRel: Double
    public let firstBad: [(Int, Double, Double)]
    public var description: String {
        "max |diff| = \(maxAbs), max rel = \(maxRel)"
            + (firstBad.isEmpty ? "" : "; first differing (index, got, expected): "
                + firstBad.map { "(\($0.0), \($0.1), \($0.2))" }.joined(separator: " "))
    }
}

public func difference<A: BinaryFloatingPoint, B: BinaryFloatingPoint>(
    _ got: [A], _ expected: [B], rtol: Double, atol: Double) -> Difference {
    var maxAbs = 0.0, maxRel = 0.0
    var bad: [(Int, Double, Double)] = []
    for i in 0..<min(got.count, expected.count) {
        let g = Double(got[i]), e = Double(expected[i])
        let d = abs(g - e)
        maxAbs = max(maxAbs, d)
        if e != 0 { maxRel = max(maxRel, d / abs(e)) }
        if !(d <= atol + rtol * abs(e)), bad.count < 5 { bad.append((i, g, e)) }
    }
    return Difference(maxAbs: maxAbs, maxRel: maxRel, firstBad: bad)
}

/// Elementwise |got - expected| <= atol + rtol * |expected|.
public func assertClose<A: BinaryFloatingPoint, B: BinaryFloatingPoint>(
    _ got: [A], _ expected: [B], rtol: Double = 1e-5, atol: Double = 1e-6,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, expected.count, "\(message()): length", file: file, line: line)
    let d = difference(got, expected, rtol: rtol, atol: atol)
    XCTAssertTrue(d.firstBad.isEmpty && got.count == expected.count, "\(message()): \(d)", file: file, line: line)
}

/// ||got - expected|| <= rtol * ||expected|| + atol (relative error of the whole vector; the
/// atol floor is for tensors whose exact value is zero, e.g. attention key-bias gradients).
/// Returns the relative error.
@discardableResult
public func assertNormClose<A: BinaryFloatingPoint, B: BinaryFloatingPoint>(
    _ got: [A], _ expected: [B], rtol: Double, atol: Double = 0,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) -> Double {
    XCTAssertEqual(got.count, expected.count, "\(message()): length", file: file, line: line)
    var num = 0.0, den = 0.0
    for i in 0..<min(got.count, expected.count) {
        let d = Double(got[i]) - Double(expected[i]); num += d * d; den += Double(expected[i]) * Double(expected[i])
    }
    let rel = num.squareRoot() / max(den.squareRoot(), 1e-30)
    XCTAssertLessThanOrEqual(num.squareRoot(), rtol * den.squareRoot() + atol, "\(message()): relative norm error \(rel) (\(difference(got, expected, rtol: 0, atol: 0)))",
                             file: file, line: line)
    return rel
}
