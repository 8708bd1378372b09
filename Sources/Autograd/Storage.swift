// Float32 memory blocks recycled through a free list, so that a training step allocates
// nothing from the system after the first step.

import Foundation

public final class Storage {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    let capacity: Int

    /// Block of at least `count` floats, zero-filled when `zeroed`.
    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        (pointer, capacity) = StoragePool.take(count)
        if zeroed { Parallel.zero(pointer, count: count) }
    }

    deinit { StoragePool.give(pointer, capacity) }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: pointer, count: count) }

    /// Return every recycled block to the system (between unrelated jobs, e.g. two models).
    public static func drainPool() { StoragePool.drain() }
}

/// Idle blocks keyed by capacity. A request takes a block of exactly its size, else the
/// smallest idle block at most 25% larger (sizes that vary a little per step: masked rows,
/// padded batches), else new memory. Idle memory is capped at the peak of live memory, so a
/// process never holds more than twice its working set. Not thread-safe: allocation happens
/// on the thread that drives the tape; kernels only split loops across threads.
enum StoragePool {
    nonisolated(unsafe) static var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    nonisolated(unsafe) static var idleFloats = 0
    nonisolated(unsafe) static var liveFloats = 0
    nonisolated(unsafe) static var peakLiveFloats = 0

    static func take(_ count: Int) -> (UnsafeMutablePointer<Float>, Int) {
        var capacity = max(count, 1)
        if free[capacity]?.isEmpty ?? true, count > 1 << 14 {
            capacity = free.keys.filter { $0 >= count && $0 <= count + count / 4 && !(free[$0]!.isEmpty) }.min() ?? capacity
        }
        let p: UnsafeMutablePointer<Float>
        if let reused = free[capacity]?.popLast() { p = reused; idleFloats -= capacity }
        else { p = .allocate(capacity: capacity) }
        liveFloats += capacity
        peakLiveFloats = max(peakLiveFloats, liveFloats)
        return (p, capacity)
    }

    static func give(_ p: UnsafeMutablePointer<Float>, _ capacity: Int) {
        liveFloats -= capacity
        free[capacity, default: []].append(p)
        idleFloats += capacity
        // over the cap: free the largest idle blocks first
        while idleFloats > max(peakLiveFloats, 1 << 24), let k = free.keys.filter({ !free[$0]!.isEmpty }).max() {
            free[k]!.removeLast().deallocate()
            idleFloats -= k
        }
    }

    static func drain() {
        for (_, ps) in free { for p in ps { p.deallocate() } }
        free = [:]; idleFloats = 0; peakLiveFloats = liveFloats
    }
}
