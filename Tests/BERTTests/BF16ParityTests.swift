// `Tape(precision: .bf16)` on the tiny reference BERT against tools/make_bf16_reference.py:
// torch's own mixed precision (torch.autocast bf16) and torch running droplab's bf16 scheme
// (the operands of every linear and per-head attention product rounded to bf16, fp32
// products), plus the fp32 reference.
//
// Tolerances, from bf16's unit roundoff u = 2^-8 (8 significant bits, round to nearest):
// rounding both operands of a product perturbs it by about u (relative, RMS; errors of
// independent roundings add in quadrature). The logits sit behind d = 14 bf16 product stages
// (6 per layer: Q/K/V, scores Q K^T, context P V, attention output, FFN in, FFN out; 2 in the
// MLM head), the gradients behind those and as many backward stages (d = 28). One bf16
// implementation is therefore within eps = sqrt(d) u of fp32 (logits 0.0146, gradients 0.0207,
// as relative norm errors),
// and two of them (droplab, autocast) within 2 eps of each other. That bf16 arithmetic really
// ran is checked too: the logits differ from fp32 by more than u / 10.
// Against the emulation of the same scheme only fp32 rounding differs (a different summation
// order now and then moves a value across a bf16 rounding boundary): 1e-3 relative norm. The
// fp32 difference of an operand, ~u32 √(l K / 6) after l stages of K <= 64 terms (2e-7 to 8e-7
// relative), crosses a boundary with probability ~δ / ulp_bf16 (ulp 2^-7 = 7.8e-3): 3e-5 to 1e-4;
// a K-term product then has ~2K of them flipped, each moving the output by 7.8e-3 / √K of its RMS,
// a relative RMS of 6e-5 to 1.1e-4 per stage, √14 or √28 stages: 2e-4 to 6e-4, below 1e-3
// (measured: logits 2.9e-4, gradients 2.5e-7). The loss averages 12 labelled positions' cross-
// entropies, each moved by ~√2 δz (δz ~ 3e-4 at RMS |z| = 1.5): ~1.3e-4 nats, 3e-5 of the
// 4.6-nat loss against 1e-4 (measured 1e-7).
// The bf16 roundings are droplab's own conversion (the same on every CPU) and a product of bf16
// values is exact in fp32, so oneDNN kernels differ only in fp32 accumulation (~1e-7): none of
// these margins depends on the CPU.

import Autograd
import BERT
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class BF16ParityTests: XCTestCase {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/bert_bf16_reference.h5").path
    static let u = 1.0 / 256

    /// droplab's bf16 logits (every position), loss and parameter gradients.
    func bf16Run(_ ref: ReferenceParityTests.Reference) throws -> (logits: [Float], loss: Double, grads: [String: [Float]]) {
        let model = try ref.model()
        let t0 = Tape(recording: false, precision: .bf16)
        let logits = model.mlmLogits(t0, model.encode(t0, ref.batch)).values
        let tape = Tape(precision: .bf16)
        let loss = model.mlmLoss(tape, ref.batch, labels: ref.labels)
        tape.backward(loss)
        let grads = Dictionary(uniqueKeysWithValues: model.params.entries.map { ($0.name, model.params[$0.name].gradValues) })
        return (logits, Double(loss.scalar), grads)
    }

    /// Edge cases (zeros, infinities, NaNs, subnormals, ties, overflow) and 4096 random bit
    /// patterns convert as torch converts them; NaN stays NaN (torch writes 0xFFFF, droplab 0x7FC0).
    func testConversionMatchesTorch() throws {
        let file = try HDF5File.open(Self.path)
        let fp32 = try file.readInt64s("conversion/fp32_bits").values, torch = try file.readInt64s("conversion/bf16_bits").values
        XCTAssertGreaterThan(fp32.count, 4096)
        var wrong: [String] = []
        for (x, t) in zip(fp32.map { Float(bitPattern: UInt32($0)) }, torch.map { UInt16($0) }) {
            let ours = BF16.bits(x)
            let same = x.isNaN ? BF16.float(ours).isNaN && BF16.float(t).isNaN : ours == t
            if !same && wrong.count < 5 { wrong.append(String(format: "%08x -> %04x, torch %04x", x.bitPattern, ours, t)) }
        }
        XCTAssertEqual(wrong, [])
    }

    func testAgainstAutocastAndFloat32() throws {
        try XCTSkipUnless(BF16.isSupported, "no AVX512-BF16")
        let ref = try ReferenceParityTests.Reference()
        let file = try HDF5File.open(Self.path)
        let ours = try bf16Run(ref)
        let eps = (logits: 14.0.squareRoot() * Self.u, grads: 28.0.squareRoot() * Self.u)
        let fp32Logits = try ref.floats("logits"), fp32Loss = try ref.doubles("loss")[0]
        // eps, 2 eps and u / 10: see the header (measured 6.1e-3 vs fp32, 6.7e-3 vs autocast)
        let vsFP32 = assertNormClose(ours.logits, fp32Logits, rtol: eps.logits, "logits vs fp32")
        XCTAssertGreaterThan(vsFP32, Self.u / 10, "bf16 logits equal the fp32 ones: no bf16 arithmetic ran")
        let vsAutocast = assertNormClose(ours.logits, try file.readFloats("autocast/logits").values, rtol: 2 * eps.logits, "logits vs autocast")
        let autocastLoss = try file.readDoubles("autocast/loss").values[0]
        XCTAssertEqual(ours.loss, autocastLoss, accuracy: 2 * eps.logits * autocastLoss, "loss vs autocast")
        XCTAssertEqual(ours.loss, fp32Loss, accuracy: eps.logits * fp32Loss, "loss vs fp32")
        var worst = (fp32: 0.0, autocast: 0.0)
        for (name, g) in ours.grads.sorted(by: { $0.key < $1.key }) where !name.hasSuffix("key.bias") {   // key biases: exactly 0
            worst.fp32 = max(worst.fp32, assertNormClose(g, try ref.floats("grads/" + name), rtol: eps.grads, "\(name) vs fp32"))
            worst.autocast = max(worst.autocast, assertNormClose(g, try file.readFloats("autocast/grads/" + name).values,
                                                                 rtol: 2 * eps.grads, "\(name) vs autocast"))
        }
        print(String(format: "bf16 parity: logits rel error vs fp32 %.2e (tol %.2e), vs autocast %.2e (tol %.2e); loss %.6f, autocast %.6f, fp32 %.6f; "
                     + "worst gradient rel error vs fp32 %.2e (tol %.2e), vs autocast %.2e (tol %.2e)",
                     vsFP32, eps.logits, vsAutocast, 2 * eps.logits, ours.loss, autocastLoss, fp32Loss,
                     worst.fp32, eps.grads, worst.autocast, 2 * eps.grads))
    }

    func testSameSchemeInTorch() throws {
        try XCTSkipUnless(BF16.isSupported, "no AVX512-BF16")
        let ref = try ReferenceParityTests.Reference()
        let file = try HDF5File.open(Self.path)
        let ours = try bf16Run(ref)
        // 1e-3 and 1e-4: boundary flips of the bf16 roundings, see the header
        let logits = assertNormClose(ours.logits, try file.readFloats("emulated/logits").values, rtol: 1e-3, "logits vs emulation")
        let loss = try file.readDoubles("emulated/loss").values[0]
        XCTAssertEqual(ours.loss, loss, accuracy: 1e-4 * loss, "loss vs emulation")
        var worst = 0.0
        for (name, g) in ours.grads.sorted(by: { $0.key < $1.key }) where !name.hasSuffix("key.bias") {
            worst = max(worst, assertNormClose(g, try file.readFloats("emulated/grads/" + name).values, rtol: 1e-3, "\(name) vs emulation"))
        }
        print(String(format: "bf16 parity with torch emulating droplab's scheme: logits rel error %.2e, loss %.7f vs %.7f, worst gradient rel error %.2e",
                     logits, ours.loss, loss, worst))
    }
}
