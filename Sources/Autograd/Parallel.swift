// Work splitting over the machine's cores. OpenBLAS runs single-threaded inside each call
// and droplab splits every large kernel (matrix products included) across its own threads,
// so no BLAS worker spins while elementwise work runs. Chunk boundaries depend only on the
// sizes and the thread count, so results are deterministic.

import CBLAS
import Dispatch
import Foundation

public enum Parallel {
    /// Threads used by kernels (`--threads`, else DROPLAB_THREADS, else the cores shared among
    /// the processes mpirun started on this machine: all of them without mpirun).
    nonisolated(unsafe) public private(set) static var threads: Int = {
        openblas_set_num_threads(1)
        let env = ProcessInfo.processInfo.environment
        let localRanks = env["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? 1
        return max(1, env["DROPLAB_THREADS"].flatMap { Int($0) } ?? ProcessInfo.processInfo.activeProcessorCount / max(1, localRanks))
    }()

    /// Set the kernel thread count (`--threads`).
    public static func use(threads n: Int) {
        _ = threads   // the initialiser also makes OpenBLAS single-threaded
        threads = max(1, n)
    }

    /// Split 0..<n into at most `threads` contiguous ranges of at least `grain` items and
    /// run `body` on each concurrently.
    @inline(__always)
    public static func forEach(_ n: Int, grain: Int = 16384, _ body: (Range<Int>) -> Void) {
        let parts = min(threads, max(1, n / max(grain, 1)))
        if parts <= 1 { if n > 0 { body(0..<n) }; return }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            body((n * p / parts)..<(n * (p + 1) / parts))
        }
    }

    /// p[0..<n] = 0, split across the threads (zeroed gradient buffers and parameter gradients).
    public static func zero(_ p: UnsafeMutablePointer<Float>, count n: Int) {
        forEach(n, grain: 1 << 16) { r in (p + r.lowerBound).update(repeating: 0, count: r.count) }
    }
}
