// Basic properties of the two random generators.

import Autograd
import XCTest

final class RNGTests: XCTestCase {
    func testRNGSameSeedSameSequence() {
        var a = RNG(seed: 12345), b = RNG(seed: 12345), c = RNG(seed: 12346)
        let sa = (0..<100).map { _ in a.next() }, sb = (0..<100).map { _ in b.next() }
        let sc = (0..<100).map { _ in c.next() }
        XCTAssertEqual(sa, sb)
        XCTAssertNotEqual(sa, sc)
        XCTAssertEqual(Set(sa).count, 100)
        // The whole state is one UInt64: resuming from it continues the sequence.
        var d = RNG(seed: 9)
        _ = (0..<17).map { _ in d.next() }
        var e = RNG(state: d.state)
        XCTAssertEqual((0..<10).map { _ in d.uniform() }, (0..<10).map { _ in e.uniform() })
    }

    func testUniformRangeAndMoments() {
        var rng = RNG(seed: 1)
        let n = 100_000
        let u = (0..<n).map { _ in rng.uniform() }
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 }, "uniform outside [0, 1)")
        let mean = u.reduce(0) { $0 + Double($1) } / Double(n)
        let variance = u.reduce(0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(n)
        // Statistical margins for n = 1e5 draws (the generator is integer arithmetic with a fixed
        // seed: the same values on every CPU): the mean's standard error is sqrt(1/12 / n) = 9.1e-4,
        // so 0.01 is 11 SE; the sample variance's is sqrt((1/80 - 1/144) / n) = 2.4e-4, so 0.003 is
        // 12.7 SE; a bin's share has SE sqrt(0.1 * 0.9 / n) = 9.5e-4, so 0.01 is 10.5 SE.
        XCTAssertEqual(mean, 0.5, accuracy: 0.01)
        XCTAssertEqual(variance, 1.0 / 12, accuracy: 0.003)
        // Ten equal bins each get about a tenth.
        var bins = [Int](repeating: 0, count: 10)
        for x in u { bins[Int(x * 10)] += 1 }
        for b in bins { XCTAssertEqual(Double(b) / Double(n), 0.1, accuracy: 0.01) }
    }

    func testNormalMoments() {
        var rng = RNG(seed: 2)
        let n = 100_000
        let z = (0..<n).map { _ in Double(rng.normal()) }
        XCTAssertTrue(z.allSatisfy(\.isFinite))
        let mean = z.reduce(0, +) / Double(n)
        let std = (z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)).squareRoot()
        // n = 1e5, fixed seed: the mean's SE is 1/sqrt(n) = 3.2e-3 (0.02 = 6.3 SE), the sample
        // standard deviation's 1/sqrt(2n) = 2.2e-3 (0.02 = 8.9 SE), the share within 1 sigma's
        // sqrt(0.6827 * 0.3173 / n) = 1.5e-3 (0.01 = 6.8 SE); float32 rounding in the Box-Muller
        // transform (~1e-7 relative) is far below all three.
        XCTAssertEqual(mean, 0, accuracy: 0.02)
        XCTAssertEqual(std, 1, accuracy: 0.02)
        let within1 = Double(z.filter { abs($0) < 1 }.count) / Double(n)
        XCTAssertEqual(within1, 0.6827, accuracy: 0.01)
    }

    func testIntAndShuffle() {
        var rng = RNG(seed: 3)
        let k = (0..<10_000).map { _ in rng.int(7) }
        XCTAssertTrue(k.allSatisfy { (0..<7).contains($0) })
        XCTAssertEqual(Set(k).count, 7)
        var a = Array(0..<50)
        rng.shuffle(&a)
        XCTAssertEqual(a.sorted(), Array(0..<50))
        XCTAssertNotEqual(a, Array(0..<50))
    }

    func testCounterRNG() {
        let key = CounterRNG(seed: 5, 1, 2)
        XCTAssertEqual(key.key, CounterRNG(seed: 5, 1, 2).key)
        XCTAssertNotEqual(key.key, CounterRNG(seed: 5, 2, 1).key, "stream order matters")
        XCTAssertNotEqual(key.key, CounterRNG(seed: 5, 1, 3).key)
        XCTAssertNotEqual(key.key, CounterRNG(seed: 6, 1, 2).key)
        // Stateless: a value depends only on (key, counter), not on evaluation order.
        let forward = (0..<1000).map { key.uniform($0) }
        let backward = (0..<1000).reversed().map { key.uniform($0) }.reversed()
        XCTAssertEqual(forward, Array(backward))
        let n = 100_000
        let u = (0..<n).map { key.uniform($0) }
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(u.reduce(0) { $0 + Double($1) } / Double(n), 0.5, accuracy: 0.01)   // SE sqrt(1/12 / n) = 9.1e-4: 11 SE
    }
}
