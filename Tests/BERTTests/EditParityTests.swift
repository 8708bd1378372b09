// Parity of droplab's LoRA and LoReFT edits with their published formulations, written out in
// PyTorch by tools/make_edit_reference.py (peft's LoRA: output + (alpha/r) lora_B(lora_A(x)) on
// each adapted linear; pyreft's LoReFT: h + (W h + b - R h) R on chosen rows of a layer's output)
// on the model and batch of bert_reference.h5, in float64: the MLM loss with the edit installed
// and the gradient of every edit tensor. droplab computes LoRA as a weight view W + (alpha/r) B A
// and LoReFT as a hook at `block` sites; both in float32.

import Autograd
import BERT
import Checkpoint
import Foundation
import Interventions
import TestSupport
import XCTest

// Tolerances: the base model's gradients pass 28 float32 product stages (ReferenceParityTests),
// the edit's 2 more (the weight gradient's sum over 39 tokens, then its product with A or B, or
// the rows' product with R and W), each a reduction of K <= 64 terms. One float32 implementation
// against float64 has a first-order worst-case relative error of 30 γ_64 = 1.2e-4
// (Tolerance.float32Bound); rtol 1e-3 on a tensor's norm is 8x that. The loss, a mean of
// cross-entropies of logits off by that relative error (|z| <= 4), stays within 1e-4 · 4 / 4.6
// of itself: 1e-4 relative is the same bound.
final class EditParityTests: XCTestCase {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/edit_reference.h5").path

    func testLoRAMatchesTorchReference() throws {
        let ref = try ReferenceParityTests.Reference(path: Self.path)
        let model = try ref.model()
        let targets = try JSONDecoder().decode([String].self, from: Data(try ref.file.stringAttribute("targets", on: "lora").utf8))
        XCTAssertEqual(targets.count, 4 * ref.config.numLayers)
        let rank = try ref.file.readFloats("lora/A/" + targets[0]).shape[0], alpha = Float(try ref.doubles("lora/alpha")[0])
        let edit = LoRAEdit(model.params, targets: targets, rank: rank, alpha: alpha, seed: 0)
        for t in targets {
            for (k, name) in [("A", "lora_A"), ("B", "lora_B")] {
                try ref.file.readFloats("lora/\(k)/" + t, into: edit.params[t + "." + name].buffer, shape: edit.params[t + "." + name].shape)
            }
        }
        let tape = Tape()
        let loss = model.mlmLoss(tape, ref.batch, labels: ref.labels, interventions: edit.interventions())
        tape.backward(loss)
        let expected = try ref.doubles("lora/loss")[0]
        XCTAssertEqual(Double(loss.scalar), expected, accuracy: 1e-4 * expected)
        XCTAssertGreaterThan(abs(expected - (try ref.doubles("plain_loss")[0])), 0.1, "the edit changes the loss")
        var worst = 0.0
        for t in targets {
            for (k, name) in [("A", "lora_A"), ("B", "lora_B")] {
                worst = max(worst, assertNormClose(edit.params[t + "." + name].gradValues, try ref.doubles("lora/grad_\(k)/" + t), rtol: 1e-3, "\(t) \(k)"))
            }
        }
        print("parity: LoRA loss \(loss.scalar) vs \(expected); worst relative gradient error \(worst)")
    }

    func testLoReFTMatchesTorchReference() throws {
        let ref = try ReferenceParityTests.Reference(path: Self.path)
        let model = try ref.model()
        struct Place: Decodable { let layer: Int; let rows: [Int32] }
        let places = try JSONDecoder().decode([Place].self, from: Data(try ref.file.stringAttribute("places", on: "reft").utf8))
        let rank = try ref.file.readFloats("reft/0/R").shape[0]
        // each place its own named rows
        let edit = LoReFTEdit(hiddenSize: ref.config.hiddenSize, places: places.indices.map { LoReFTEdit.Place(layer: places[$0].layer, position: "p\($0)") },
                              rank: rank, seed: 0)
        for k in places.indices {
            for n in ["R", "W", "b"] { try ref.file.readFloats("reft/\(k)/\(n)", into: edit.params["reft.\(k).\(n)"].buffer, shape: edit.params["reft.\(k).\(n)"].shape) }
        }
        let rows = Dictionary(uniqueKeysWithValues: places.indices.map { ("p\($0)", places[$0].rows) })
        let tape = Tape()
        let loss = model.mlmLoss(tape, ref.batch, labels: ref.labels, interventions: edit.interventions(EditContext(rows: rows)))
        tape.backward(loss)
        let expected = try ref.doubles("reft/loss")[0]
        XCTAssertEqual(Double(loss.scalar), expected, accuracy: 1e-4 * expected)
        XCTAssertGreaterThan(abs(expected - (try ref.doubles("plain_loss")[0])), 0.01, "the edit changes the loss")
        var worst = 0.0
        for k in places.indices {
            for n in ["R", "W", "b"] {
                worst = max(worst, assertNormClose(edit.params["reft.\(k).\(n)"].gradValues, try ref.doubles("reft/grad/\(k)/\(n)"), rtol: 1e-3, "place \(k) \(n)"))
            }
        }
        print("parity: LoReFT loss \(loss.scalar) vs \(expected); worst relative gradient error \(worst)")
    }
}
