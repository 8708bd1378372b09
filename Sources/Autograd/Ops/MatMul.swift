// Matrix products over cblas_sgemm. Shape legend: G batch (product of leading dims),
// M rows of op(A), K inner, N columns of op(B).

import CBLAS
import Dispatch

/// C[M,N] = alpha * op(A) op(B) + beta * C, row-major, with leading dimensions (defaults:
/// contiguous). Large products are split across threads (`forEachPart`); each part is a
/// single-threaded OpenBLAS call.
@inline(__always)
func sgemm(_ transA: Bool, _ transB: Bool, _ M: Int, _ N: Int, _ K: Int, _ alpha: Float,
           _ A: UnsafePointer<Float>, _ B: UnsafePointer<Float>, _ beta: Float, _ C: UnsafeMutablePointer<Float>,
           lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil, parallel: Bool = true) {
    let lda = lda ?? (transA ? M : K), ldb = ldb ?? (transB ? K : N), ldc = ldc ?? N
    forEachPart(M, N, K, parallel: parallel) { _, m0, m, n0, n in
        let a = transA ? A + m0 : A + m0 * lda, b = transB ? B + n0 * ldb : B + n0
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(K), alpha, a, Int32(lda), b, Int32(ldb), beta, C + m0 * ldc + n0, Int32(ldc))
    }
}

/// Split the product C[M,N] (inner size K) across threads by rows of C, or by columns when C
/// has few rows; small products (or parallel: false) are one part. body(part, m0, m, n0, n)
/// computes rows m0..<m0+m and columns n0..<n0+n.
@inline(__always)
func forEachPart(_ M: Int, _ N: Int, _ K: Int, parallel: Bool, _ body: (Int, Int, Int, Int, Int) -> Void) {
    let threads = Parallel.threads
    if !parallel || threads == 1 || M * N * K < 1 << 21 { body(0, 0, M, 0, N); return }
    if M >= N || M >= 64 * threads {
        DispatchQueue.concurrentPerform(iterations: threads) { p in
            let m0 = M * p / threads, m1 = M * (p + 1) / threads
            body(p, m0, m1 - m0, 0, N)
        }
    } else {
        DispatchQueue.concurrentPerform(iterations: threads) { p in
            let n0 = N * p / threads, n1 = N * (p + 1) / threads
            body(p, 0, M, n0, n1 - n0)
        }
    }
}

/// C = op(A) op(B) + beta C (beta 0 or 1) with the fp32 operands, or in bf16 when both bf16
/// copies are given (pointing at the same elements as A and B), with leading dimensions
/// (defaults: contiguous). Split across threads, or (thread: t) one call on kernel thread t.
@inline(__always)
func product(_ transA: Bool, _ transB: Bool, _ M: Int, _ N: Int, _ K: Int, _ A: UnsafePointer<Float>, _ Ah: UnsafeRawPointer?,
             _ B: UnsafePointer<Float>, _ Bh: UnsafeRawPointer?, _ beta: Float, _ C: UnsafeMutablePointer<Float>,
             lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil, thread: Int? = nil) {
    if let Ah, let Bh { bf16gemm(transA, transB, M, N, K, Ah, Bh, accumulate: beta != 0, C, lda: lda, ldb: ldb, ldc: ldc, thread: thread) }
    else { sgemm(transA, transB, M, N, K, 1, A, B, beta, C, lda: lda, ldb: ldb, ldc: ldc, parallel: thread == nil) }
}

/// Element `offset` of a bf16 copy.
@inline(__always)
func bf16At(_ copy: Storage?, _ offset: Int = 0) -> UnsafeRawPointer? { copy.map { UnsafeRawPointer($0.pointer) + 2 * offset } }

extension Tape {
    /// Batched matrix product: a [..., r, c] and b [..., r', c'] with the same leading dims.
    /// op(X) is X or its transpose of the last two dims. Out [..., M, N].
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA ta: Bool = false, transposeB tb: Bool = false) -> Tensor {
        precondition(a.shape.count >= 2 && a.shape.count == b.shape.count && a.shape.dropLast(2) == b.shape.dropLast(2),
                     "matmul shapes \(a.shape) \(b.shape)")
        let ra = a.shape[a.shape.count - 2], ca = a.shape[a.shape.count - 1]
        let rb = b.shape[b.shape.count - 2], cb = b.shape[b.shape.count - 1]
        let M = ta ? ca : ra, K = ta ? ra : ca, N = tb ? rb : cb
        precondition(K == (tb ? cb : rb), "matmul inner dims \(a.shape) \(b.shape) ta=\(ta) tb=\(tb)")
        let G = a.count / (ra * ca)
        let out = Tensor(uninitialized: Array(a.shape.dropLast(2)) + [M, N])
        for g in 0..<G {
            sgemm(ta, tb, M, N, K, 1, a.data + g * M * K, b.data + g * K * N, 0, out.data + g * M * N)
        }
        if needsGrad(a, b) {
            record(out) {
                let dC = out.grad
                for g in 0..<G {
                    let A = a.data + g * M * K, B = b.data + g * K * N, dc = dC + g * M * N
                    if a.requiresGrad {  // dop(A) = dC op(B)^T
                        if ta { sgemm(tb, true, K, M, N, 1, B, dc, 1, a.grad + g * M * K) }
                        else { sgemm(false, !tb, M, K, N, 1, dc, B, 1, a.grad + g * M * K) }
                    }
                    if b.requiresGrad {  // dop(B) = op(A)^T dC
                        if tb { sgemm(true, ta, N, K, M, 1, dc, A, 1, b.grad + g * K * N) }
                        else { sgemm(!ta, false, K, N, M, 1, A, dc, 1, b.grad + g * K * N) }
                    }
                }
            }
        }
        return out
    }

    /// Affine map with Hugging Face weight layout: x [..., I], w [O, I], b [O] -> [..., O] = x w^T + b.
    /// On a bf16 tape its three products (forward, dx, dw) run in bf16.
    public func linear(_ x: Tensor, _ w: Tensor, _ b: Tensor?) -> Tensor {
        let I = x.lastDim, O = w.shape[0], R = x.rows
        precondition(w.shape == [O, I] && (b == nil || b!.shape == [O]), "linear \(x.shape) \(w.shape) \(b?.shape ?? [])")
        let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [O])
        if let b {
            Parallel.forEach(R, grain: max(1, 16384 / O)) { rows in for r in rows { (out.data + r * O).update(from: b.data, count: O) } }
        }
        let xh = precision == .bf16 ? bf16(x) : nil, wh = precision == .bf16 ? bf16(w) : nil
        product(false, true, R, O, I, x.data, bf16At(xh), w.data, bf16At(wh), b == nil ? 0 : 1, out.data)
        if needsGrad(x, w, b) {
            record(out) {
                let dy = out.grad, dyh = xh.map { _ in BF16.copy(dy, count: R * O) }
                if x.requiresGrad {
                    let (dx, fresh) = x.gradTarget()
                    product(false, false, R, I, O, dy, bf16At(dyh), w.data, bf16At(wh), fresh ? 0 : 1, dx)
                }
                if w.requiresGrad { product(true, false, O, I, R, dy, bf16At(dyh), x.data, bf16At(xh), 1, w.grad) }
                if let b, b.requiresGrad { sumRows(dy, rows: R, cols: O, into: b.grad) }
            }
        }
        return out
    }
}

/// into[c] += sum_r x[r, c] (columns split across threads)
func sumRows(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into: UnsafeMutablePointer<Float>) {
    Parallel.forEach(cols, grain: rows * cols >= 1 << 18 ? 64 : cols) { cs in
        for r in 0..<rows {
            let row = x + r * cols
            for c in cs { into[c] += row[c] }
        }
    }
}
