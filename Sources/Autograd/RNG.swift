// Random numbers. Two kinds, both seedable and reproducible:
// - CounterRNG: stateless, value = f(key, counter). Dropout masks use it keyed by
//   (seed, step, site), so a mask can be regenerated exactly after a resume.
// - RNG: a small sequential generator (splitmix64) whose whole state is one UInt64 that
//   checkpoints store, for init, data order and masking.

import Foundation

/// splitmix64 finalizer: a bijective 64-bit mix with good avalanche.
@inline(__always)
public func mix64(_ z0: UInt64) -> UInt64 {
    var z = z0 &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

public struct CounterRNG {
    public let key: UInt64
    /// Key derived from a seed and any number of stream identifiers (step, site, layer...).
    public init(seed: UInt64, _ streams: UInt64...) {
        var k = mix64(seed)
        for s in streams { k = mix64(k ^ mix64(s &+ 0x632B_E59B_D9B4_E019)) }
        key = k
    }
    /// Uniform in [0, 1) with 16 random bits, for element `counter`: one 64-bit hash gives
    /// the values of four consecutive counters (cheap enough to generate dropout masks inline).
    @inline(__always) public func uniform(_ counter: Int) -> Float {
        Float(bits16(counter >> 2) >> UInt64(16 * (counter & 3)) & 0xFFFF) * 0x1p-16
    }
    /// The 64 random bits shared by counters 4*block ..< 4*block+4.
    @inline(__always) public func bits16(_ block: Int) -> UInt64 {
        mix64(key ^ (UInt64(truncatingIfNeeded: block) &* 0xD1B5_4A32_D192_ED03))
    }
}

public struct RNG {
    public var state: UInt64
    public init(seed: UInt64) { state = mix64(seed ^ 0x5DEE_CE66_D1CE_4E5B) }
    public init(state: UInt64) { self.state = state }

    @inline(__always) public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return mix64(state)
    }
    /// Uniform in [0, 1) (24 bits).
    public mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }
    /// Uniform integer in 0..<n (n > 0).
    public mutating func int(_ n: Int) -> Int { Int((next() >> 1) % UInt64(n)) }
    /// Standard normal (Box-Muller, double precision).
    public mutating func normal() -> Float {
        let u1 = (Double(next() >> 11) + 1) * 0x1p-53, u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
    /// Fisher-Yates shuffle.
    public mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, int(i + 1)) }
    }
}
