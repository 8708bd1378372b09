// Float32 memory blocks with a size-keyed free list, so that a training step allocates
// nothing from the system after the first step (buffers of the same size are recycled).

import Foundation

public final class Storage {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Fresh block of `count` floats, zero-filled when `zeroed`.
    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        self.pointer = StoragePool.take(StoragePool.bucket(count))
        if zeroed { pointer.initialize(repeating: 0, count: count) }
    }

    deinit { StoragePool.give(pointer, StoragePool.bucket(count)) }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: pointer, count: count) }

    /// Return every recycled block to the system (between unrelated jobs, e.g. two models).
    public static func drainPool() { StoragePool.drain() }
}

/// Free list of blocks keyed by element count. Not thread-safe: allocation happens on the
/// thread that drives the tape; kernels only split loops across threads.
enum StoragePool {
    nonisolated(unsafe) static var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    nonisolated(unsafe) static var pooledFloats = 0
    static let maxPooledFloats = 1 << 30  // 4 GiB; beyond that, blocks go back to the system

    /// Capacity actually allocated for `count` floats: large sizes are rounded up to 64 KiB,
    /// so buffers whose size varies a little per step (masked rows) are still recycled.
    @inline(__always) static func bucket(_ count: Int) -> Int { count <= 1 << 14 ? count : (count + (1 << 14) - 1) & ~((1 << 14) - 1) }

    static func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        if let p = free[count]?.popLast() { pooledFloats -= count; return p }
        return UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
    }

    static func give(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
        if pooledFloats + count > maxPooledFloats { p.deallocate(); return }
        free[count, default: []].append(p)
        pooledFloats += count
    }

    static func drain() {
        for (_, ps) in free { for p in ps { p.deallocate() } }
        free = [:]; pooledFloats = 0
    }
}
