// Concept edits: tensors of their own (one flat `Parameters` store per edit, trained through
// the shared Trainer as part of a `ParameterGroup`) and the hooks that put them into a forward
// pass. Weight-level edits are weight views (Sites.swift): `linear` sees
//   BinaryMaskEdit  W ⊙ M(logits)        hard Gumbel-sigmoid sample + straight-through (training),
//                                        M = 1[logit > 0] (evaluation)
//   LoRAEdit        W + (α/r)·B·A        B = 0 at init (Hu et al. 2021)
//   DenseEdit       W + ΔW               ΔW = 0 at init (finetuning without touching W)
// and the activation-level LoReFTEdit is a hook at `block` sites (Wu et al. 2024). The base
// model's parameters are never written: removing an edit is dropping its Interventions.

import Autograd
import Foundation

/// What a forward pass needs to know besides the edit itself.
public struct EditContext {
    /// Training: the stream fresh mask samples are drawn from; nil: evaluation (deterministic).
    public var sample: CounterRNG?
    /// Rows of the batch at named positions ("cls", "sep", "mask"), for activation-level edits.
    public var rows: [String: [Int32]]
    public init(sample: CounterRNG? = nil, rows: [String: [Int32]] = [:]) { self.sample = sample; self.rows = rows }
    public static let evaluation = EditContext()
}

public protocol Edit: AnyObject {
    /// The edit's own tensors (all of them train).
    var params: Parameters { get }
    /// Add this edit's weight views / site hooks for one forward pass.
    func install(into iv: Interventions, _ context: EditContext)
    /// Called after every optimizer step (e.g. to keep LoReFT's rows orthonormal).
    func afterStep()
    /// Activation-level edits (site hooks) have no weight-space form.
    var activationLevel: Bool { get }
}

extension Edit {
    public func afterStep() {}
    public var activationLevel: Bool { false }

    /// The interventions for one forward pass (evaluation unless `context` says otherwise).
    public func interventions(_ context: EditContext = .evaluation) -> Interventions {
        let iv = Interventions()
        install(into: iv, context)
        return iv
    }

    /// The edited weights written into `weights` (a copy of the base model's): each viewed weight
    /// is replaced by its evaluation view, computed with the same ops as the forward pass, so
    /// the plain forward of the baked model equals the base model with the edit installed.
    /// Throws for activation-level edits, which have no weight-space form.
    public func bake(into weights: Parameters) throws {
        guard !activationLevel else { throw EditError("an activation-level edit (\(type(of: self))) has no weight-space form") }
        let iv = interventions()
        let tape = Tape(recording: false)
        for name in iv.viewedParameters {
            let w = weights[name]
            let v = iv.weight(name, w, tape)!
            let copy = Tensor(v.values, shape: v.shape)
            w.data.update(from: copy.data, count: w.count)
        }
    }
}

public struct EditError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// One mask logit per weight of the target matrices; logits start at `initialLogit`.
public final class BinaryMaskEdit: Edit {
    public let params: Parameters
    public let targets: [String]
    public let temperature: Float

    public init(_ base: Parameters, targets: [String], initialLogit: Float = 1, temperature: Float = 1) {
        self.targets = targets; self.temperature = temperature
        params = Parameters(targets.map { ($0, base[$0].shape) })
        params.values.pointer.update(repeating: initialLogit, count: params.totalCount)
    }

    public func install(into iv: Interventions, _ context: EditContext) {
        for (k, name) in targets.enumerated() {
            let logits = params[name], tau = temperature
            let noise = context.sample.map { Self.logisticNoise(shape: logits.shape, rng: CounterRNG(seed: $0.key, UInt64(k))) }
            iv.view(name) { w, tape in tape.maskedWeight(w, logits: logits, noise: noise, temperature: tau) }
        }
    }

    /// Logistic samples log u − log(1 − u) with u = (k + 1/2)/2¹⁶ for 16 random bits k per weight
    /// (the difference of two Gumbels), looked up in a table of the 2¹⁶ values.
    static func logisticNoise(shape: [Int], rng: CounterRNG) -> Tensor {
        let n = shape.reduce(1, *), table = logisticTable
        let st = Storage(count: n, zeroed: false), p = st.pointer
        table.withUnsafeBufferPointer { t in
            Parallel.forEach(n) { r in
                for i in r { p[i] = t[Int(rng.bits16(i >> 2) >> UInt64(16 * (i & 3)) & 0xFFFF)] }
            }
        }
        return Tensor(view: p, grad: nil, shape: shape, owner: st)
    }

    static let logisticTable: [Float] = (0..<65536).map { k in
        let u = (Double(k) + 0.5) / 65536
        return Float(log(u) - log(1 - u))
    }

    /// Weights kept at evaluation (logit > 0) per target matrix.
    public var kept: [Int] {
        targets.map { name in
            let t = params[name]
            var n = 0
            for i in 0..<t.count where t.data[i] > 0 { n += 1 }
            return n
        }
    }
    /// The study's "mean activations": mean over the target matrices of the weights kept.
    public var meanActive: Double { Double(kept.reduce(0, +)) / Double(max(targets.count, 1)) }
    public var keptFraction: Double { Double(kept.reduce(0, +)) / Double(max(params.totalCount, 1)) }
}

/// LoRA on the target matrices: h = W₀x + (α/r)·B·A·x. A [r, I] ~ U(±1/√I) (peft's
/// kaiming-uniform), B [O, r] = 0, so the edit starts as the identity.
public final class LoRAEdit: Edit {
    public let params: Parameters
    public let targets: [String]
    public let rank: Int
    public let alpha: Float

    public init(_ base: Parameters, targets: [String], rank: Int, alpha: Float, seed: UInt64) {
        self.targets = targets; self.rank = rank; self.alpha = alpha
        params = Parameters(targets.flatMap { name -> [(name: String, shape: [Int])] in
            let s = base[name].shape
            return [(name + ".lora_A", [rank, s[1]]), (name + ".lora_B", [s[0], rank])]
        })
        var rng = RNG(seed: seed)
        for name in targets {
            let a = params[name + ".lora_A"], bound = 1 / Float(a.shape[1]).squareRoot()
            for i in 0..<a.count { a.data[i] = bound * (2 * rng.uniform() - 1) }
        }
    }

    public func install(into iv: Interventions, _ context: EditContext) {
        for name in targets {
            let a = params[name + ".lora_A"], b = params[name + ".lora_B"], alpha = alpha
            iv.view(name) { w, tape in tape.lowRankWeight(w, a: a, b: b, alpha: alpha) }
        }
    }
}

/// Finetuning as an edit: W + ΔW on the target parameters, ΔW = 0 at init. With Adam and no
/// weight decay this is the same update as training W in place, but W is never written.
public final class DenseEdit: Edit {
    public let params: Parameters
    public let targets: [String]

    public init(_ base: Parameters, targets: [String]) {
        self.targets = targets
        params = Parameters(targets.map { ($0, base[$0].shape) })
    }

    public func install(into iv: Interventions, _ context: EditContext) {
        for name in targets {
            let d = params[name]
            iv.view(name) { w, tape in tape.denseWeight(w, delta: d) }
        }
    }
}

/// LoReFT interventions h ← h + Rᵀ(W·h + b − R·h) on `block` outputs, one (R, W, b) per
/// (layer, position). R's rows are orthonormal at init and after every optimizer step
/// (Gram-Schmidt retraction in Float64).
public final class LoReFTEdit: Edit {
    public struct Place: Hashable, Codable, Sendable, CustomStringConvertible {
        public var layer: Int
        public var position: String      // "cls", "sep" (the final [SEP]) or "mask"
        public init(layer: Int, position: String) { self.layer = layer; self.position = position }
        public var description: String { "block@\(layer):\(position)" }
    }
    public let params: Parameters
    public let places: [Place]
    public let rank: Int

    public init(hiddenSize C: Int, places: [Place], rank: Int, seed: UInt64) {
        precondition(rank >= 1 && rank <= C, "LoReFT rank \(rank) must be in 1...\(C)")
        self.places = places; self.rank = rank
        params = Parameters(places.indices.flatMap { k -> [(name: String, shape: [Int])] in
            [("reft.\(k).R", [rank, C]), ("reft.\(k).W", [rank, C]), ("reft.\(k).b", [rank])]
        })
        var rng = RNG(seed: seed)
        let bound = 1 / Float(C).squareRoot()           // nn.Linear's default init for W
        for k in places.indices {
            let r = params["reft.\(k).R"], w = params["reft.\(k).W"]
            for i in 0..<r.count { r.data[i] = rng.normal() }
            for i in 0..<w.count { w.data[i] = bound * (2 * rng.uniform() - 1) }
        }
        afterStep()
    }

    public var activationLevel: Bool { true }

    public func install(into iv: Interventions, _ context: EditContext) {
        for (k, place) in places.enumerated() {
            guard let rows = context.rows[place.position] else { preconditionFailure("LoReFT: no rows for position \(place.position)") }
            let r = params["reft.\(k).R"], w = params["reft.\(k).W"], b = params["reft.\(k).b"]
            iv.add(Site(.block, place.layer)) { x, tape in
                tape.replaceRows(x, rows, with: tape.loreft(tape.gatherRows(x, rows), r: r, w: w, b: b))
            }
        }
    }

    /// Orthonormalise every R's rows (modified Gram-Schmidt in Float64).
    public func afterStep() {
        for k in places.indices { Self.orthonormalizeRows(params["reft.\(k).R"]) }
    }

    static func orthonormalizeRows(_ t: Tensor) {
        let n = t.shape[0], C = t.shape[1]
        var m = (0..<t.count).map { Double(t.data[$0]) }
        for i in 0..<n {
            for j in 0..<i {
                var d = 0.0
                for c in 0..<C { d += m[i * C + c] * m[j * C + c] }
                for c in 0..<C { m[i * C + c] -= d * m[j * C + c] }
            }
            var norm = 0.0
            for c in 0..<C { norm += m[i * C + c] * m[i * C + c] }
            norm = norm.squareRoot()
            precondition(norm > 1e-12, "LoReFT: R lost rank")
            for c in 0..<C { m[i * C + c] /= norm }
        }
        for i in 0..<t.count { t.data[i] = Float(m[i]) }
    }

    /// max |R Rᵀ − I| over all interventions (in Float64 from the stored Float32 values).
    public var orthonormalityError: Double {
        var worst = 0.0
        for k in places.indices {
            let t = params["reft.\(k).R"], n = t.shape[0], C = t.shape[1]
            for i in 0..<n {
                for j in 0..<n {
                    var d = 0.0
                    for c in 0..<C { d += Double(t.data[i * C + c]) * Double(t.data[j * C + c]) }
                    worst = max(worst, abs(d - (i == j ? 1 : 0)))
                }
            }
        }
        return worst
    }
}
