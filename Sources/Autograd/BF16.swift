// bf16 matrix products for tapes with precision .bf16: both operands rounded to bf16 (8
// significant bits, round-to-nearest-even), multiplied by oneDNN's matmul (AVX512-BF16,
// fp32 accumulation) into an fp32 result. Everything else (weights, gradients, optimizer,
// LayerNorm, softmax, GELU, loss) stays fp32.
// Threads: a product is split as `sgemm` splits it (`forEachPart`), each part one oneDNN call
// on one OpenMP thread, so oneDNN's own thread pool never runs (or spins) next to droplab's.

import CDNNL
import Foundation

/// Arithmetic of a tape's `linear` products.
public enum Precision: String, Codable, CaseIterable, Sendable {
    case fp32, bf16
}

public enum BF16 {
    /// The bf16 nearest to x, ties to even, as its 16 bits (the top half of an fp32). Overflow
    /// rounds to infinity, subnormals round like any other value, NaN becomes the quiet NaN
    /// 0x7FC0 (as torch's conversion).
    @inline(__always)
    public static func bits(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        return x.isNaN ? 0x7FC0 : UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }

    @inline(__always)
    public static func float(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// Whether the CPU has AVX512-BF16, which oneDNN's bf16 matmul needs to be fast.
    public static let isSupported: Bool = {
        let bf16 = dnnl_cpu_isa_avx512_core_bf16.rawValue
        return dnnl_get_effective_cpu_isa().rawValue & bf16 == bf16
    }()

    /// The bf16 values of `count` floats, packed two per slot of a storage block.
    public static func copy(_ x: UnsafePointer<Float>, count n: Int) -> Storage {
        let s = Storage(count: (n + 1) / 2, zeroed: false)
        let out = UnsafeMutableRawPointer(s.pointer).assumingMemoryBound(to: UInt16.self)
        Parallel.forEach(n, grain: 1 << 16) { r in round(x + r.lowerBound, count: r.count, into: out + r.lowerBound) }
        return s
    }

    /// out[i] = bits(x[i]) for i in 0..<n, on the calling thread.
    @inline(__always)
    public static func round(_ x: UnsafePointer<Float>, count n: Int, into out: UnsafeMutablePointer<UInt16>) {
        for i in 0..<n { out[i] = bits(x[i]) }
    }
}

/// C[M,N] = op(A) op(B), plus C when `accumulate`: A and B bf16, C fp32, row-major with leading
/// dimensions in elements (defaults: contiguous). Split across threads, or (thread: t) one call
/// on kernel thread t's slot.
public func bf16gemm(_ transA: Bool, _ transB: Bool, _ M: Int, _ N: Int, _ K: Int, _ A: UnsafeRawPointer, _ B: UnsafeRawPointer,
              accumulate: Bool, _ C: UnsafeMutablePointer<Float>, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil, thread: Int? = nil) {
    let lda = lda ?? (transA ? M : K), ldb = ldb ?? (transB ? K : N), ldc = ldc ?? N
    if M == 0 || N == 0 { return }
    if K == 0 {
        if !accumulate { for r in 0..<M { (C + r * ldc).update(repeating: 0, count: N) } }
        return
    }
    forEachPart(M, N, K, parallel: thread == nil) { part, m0, m, n0, n in
        let a = A + 2 * (transA ? m0 : m0 * lda), b = B + 2 * (transB ? n0 * ldb : n0)
        let shape = OneDNN.Shape(transA: transA, transB: transB, M: m, N: n, K: K, lda: lda, ldb: ldb, ldc: ldc, accumulate: accumulate)
        OneDNN.matmul(shape).run(a, b, C + m0 * ldc + n0, OneDNN.slots[thread ?? part])
    }
}

/// oneDNN matmul primitives by shape (creating one generates its kernels: milliseconds), and
/// each thread's stream and scratchpad.
enum OneDNN {
    struct Shape: Hashable {
        var transA: Bool, transB: Bool
        var M: Int, N: Int, K: Int, lda: Int, ldb: Int, ldc: Int
        var accumulate: Bool
    }

    /// A part's stream and scratchpad (part p of a product uses slot p).
    final class Slot {
        let stream: dnnl_stream_t
        var scratchpad = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64), capacity = 64
        init() {
            var s: dnnl_stream_t?
            check(dnnl_stream_create(&s, engine, dnnl_stream_default_flags.rawValue))
            stream = s!
        }
        func reserve(_ bytes: Int) {
            guard bytes > capacity else { return }
            scratchpad.deallocate()
            scratchpad = .allocate(byteCount: bytes, alignment: 64)
            capacity = bytes
        }
    }

    final class Matmul {
        let primitive: dnnl_primitive_t
        let a: dnnl_memory_desc_t, b: dnnl_memory_desc_t, c: dnnl_memory_desc_t, scratchpad: dnnl_memory_desc_t

        init(_ s: Shape) {
            var a = desc(s.M, s.K, s.lda, transposed: s.transA, dnnl_bf16), b = desc(s.K, s.N, s.ldb, transposed: s.transB, dnnl_bf16)
            var c = desc(s.M, s.N, s.ldc, transposed: false, dnnl_f32)
            var op = dnnl_matmul_desc_t()
            check(dnnl_matmul_desc_init(&op, &a, &b, nil, &c))
            var attr: dnnl_primitive_attr_t?
            check(dnnl_primitive_attr_create(&attr))
            defer { dnnl_primitive_attr_destroy(attr) }
            check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user))
            if s.accumulate {   // C += product: a sum post-op
                var ops: dnnl_post_ops_t?
                check(dnnl_post_ops_create(&ops))
                defer { dnnl_post_ops_destroy(ops) }
                check(dnnl_post_ops_append_sum(ops, 1))
                check(dnnl_primitive_attr_set_post_ops(attr, ops))
            }
            var pd: dnnl_primitive_desc_t?
            check(dnnl_primitive_desc_create(&pd, &op, attr, engine, nil))
            defer { dnnl_primitive_desc_destroy(pd) }
            var p: dnnl_primitive_t?
            check(dnnl_primitive_create(&p, pd))
            primitive = p!
            self.a = a; self.b = b; self.c = c
            scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).pointee
        }

        deinit { dnnl_primitive_destroy(primitive) }

        func run(_ A: UnsafeRawPointer, _ B: UnsafeRawPointer, _ C: UnsafeMutablePointer<Float>, _ slot: Slot) {
            omp_set_num_threads(1)
            var sd = scratchpad
            slot.reserve(dnnl_memory_desc_get_size(&sd))
            let memories = [(DNNL_ARG_SRC, a, UnsafeMutableRawPointer(mutating: A)), (DNNL_ARG_WEIGHTS, b, UnsafeMutableRawPointer(mutating: B)),
                            (DNNL_ARG_DST, c, UnsafeMutableRawPointer(C)), (DNNL_ARG_SCRATCHPAD, sd, slot.scratchpad)]
                .map { arg, desc, pointer in
                    var d = desc, m: dnnl_memory_t?
                    check(dnnl_memory_create(&m, &d, engine, pointer))
                    return dnnl_exec_arg_t(arg: Int32(arg), memory: m)
                }
            defer { for m in memories { dnnl_memory_destroy(m.memory) } }
            check(dnnl_primitive_execute(primitive, slot.stream, Int32(memories.count), memories))
            check(dnnl_stream_wait(slot.stream))
        }
    }

    nonisolated(unsafe) static let engine: dnnl_engine_t = {
        var e: dnnl_engine_t?
        check(dnnl_engine_create(&e, dnnl_cpu, 0))
        return e!
    }()
    nonisolated(unsafe) static let slots = (0..<Parallel.threads).map { _ in Slot() }
    nonisolated(unsafe) private static var cache: [Shape: Matmul] = [:]
    private static let lock = NSLock()

    /// The primitive for a shape. The parts of a product look theirs up concurrently; shapes that
    /// vary by batch (masked rows) accumulate, so the cache is emptied past 1024 entries.
    static func matmul(_ s: Shape) -> Matmul {
        lock.lock()
        defer { lock.unlock() }
        if let m = cache[s] { return m }
        if cache.count >= 1024 { cache.removeAll() }
        let m = Matmul(s)
        cache[s] = m
        return m
    }

    /// 2-D memory descriptor of a rows x cols matrix stored row-major with leading dimension
    /// `ld`, or (transposed) as the transpose of a cols x rows one.
    static func desc(_ rows: Int, _ cols: Int, _ ld: Int, transposed: Bool, _ type: dnnl_data_type_t) -> dnnl_memory_desc_t {
        var d = dnnl_memory_desc_t()
        check(dnnl_memory_desc_init_by_strides(&d, 2, [Int64(rows), Int64(cols)], type, transposed ? [1, Int64(ld)] : [Int64(ld), 1]))
        return d
    }

    static func check(_ status: dnnl_status_t, line: Int = #line) {
        if status != dnnl_success { fatalError("oneDNN call failed with status \(status.rawValue) (BF16.swift:\(line))") }
    }
}
