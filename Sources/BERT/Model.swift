// BERT encoder with the semantics of Hugging Face BertModel (post-LN, learned absolute
// positions, token types, GELU FFN), plus the masked-LM head (decoder tied to the word
// embeddings) and the extractive-QA head.
// Shape legend: B batch, T tokens, C hidden, NH heads, HS head size, F FFN size, V vocab.

import Autograd

public enum Head: String, Sendable { case mlm, qa }

/// One batch of token sequences, flattened row-major [B, T].
public struct Batch {
    public var ids: [Int32]            // [B*T]
    public var typeIds: [Int32]        // [B*T]
    public var attentionMask: [Int32]  // [B*T] 1 = real token, 0 = padding
    public let batchSize: Int
    public let seqLen: Int
    public init(ids: [Int32], typeIds: [Int32]? = nil, attentionMask: [Int32]? = nil, batchSize: Int, seqLen: Int) {
        precondition(ids.count == batchSize * seqLen, "batch ids \(ids.count) != \(batchSize)x\(seqLen)")
        self.ids = ids; self.batchSize = batchSize; self.seqLen = seqLen
        self.typeIds = typeIds ?? [Int32](repeating: 0, count: ids.count)
        self.attentionMask = attentionMask ?? [Int32](repeating: 1, count: ids.count)
    }
}

/// Dropout in force for one forward pass. Masks are keyed by (seed, step, site), so a step
/// can be replayed exactly.
public struct DropoutPlan {
    public var hidden: Float
    public var attention: Float
    public var seed: UInt64
    public var step: UInt64
    public init(hidden: Float, attention: Float, seed: UInt64, step: UInt64) {
        self.hidden = hidden; self.attention = attention; self.seed = seed; self.step = step
    }
    public static let none = DropoutPlan(hidden: 0, attention: 0, seed: 0, step: 0)
    func rng(_ site: Int) -> CounterRNG { CounterRNG(seed: seed, step, UInt64(site)) }
}

public final class BertModel {
    public let config: BertConfig
    public let head: Head
    public let params: Parameters

    public init(config: BertConfig, head: Head = .mlm) {
        self.config = config
        self.head = head
        self.params = Parameters(Self.parameterSpecs(config, head: head))
    }

    /// Parameter names and shapes, identical to the Hugging Face state dict (tied decoder
    /// weight omitted: it is `bert.embeddings.word_embeddings.weight`).
    public static func parameterSpecs(_ c: BertConfig, head: Head) -> [(name: String, shape: [Int])] {
        let C = c.hiddenSize, F = c.intermediateSize
        var s: [(String, [Int])] = [
            ("bert.embeddings.word_embeddings.weight", [c.vocabSize, C]),
            ("bert.embeddings.position_embeddings.weight", [c.maxPositions, C]),
            ("bert.embeddings.token_type_embeddings.weight", [c.typeVocabSize, C]),
            ("bert.embeddings.LayerNorm.weight", [C]), ("bert.embeddings.LayerNorm.bias", [C]),
        ]
        for i in 0..<c.numLayers {
            let p = "bert.encoder.layer.\(i)."
            for m in ["query", "key", "value"] {
                s += [(p + "attention.self.\(m).weight", [C, C]), (p + "attention.self.\(m).bias", [C])]
            }
            s += [(p + "attention.output.dense.weight", [C, C]), (p + "attention.output.dense.bias", [C]),
                  (p + "attention.output.LayerNorm.weight", [C]), (p + "attention.output.LayerNorm.bias", [C]),
                  (p + "intermediate.dense.weight", [F, C]), (p + "intermediate.dense.bias", [F]),
                  (p + "output.dense.weight", [C, F]), (p + "output.dense.bias", [C]),
                  (p + "output.LayerNorm.weight", [C]), (p + "output.LayerNorm.bias", [C])]
        }
        switch head {
        case .mlm:
            s += [("cls.predictions.transform.dense.weight", [C, C]), ("cls.predictions.transform.dense.bias", [C]),
                  ("cls.predictions.transform.LayerNorm.weight", [C]), ("cls.predictions.transform.LayerNorm.bias", [C]),
                  ("cls.predictions.bias", [c.vocabSize])]
        case .qa:
            s += [("qa_outputs.weight", [2, C]), ("qa_outputs.bias", [2])]
        }
        return s
    }

    /// Hugging Face initialisation: N(0, initializer_range) for matrices and embeddings
    /// (padding row zero), zeros for biases, ones for LayerNorm weights.
    public func initialize(seed: UInt64) {
        var rng = RNG(seed: seed)
        for (i, e) in params.entries.enumerated() {
            let t = params[i]
            if e.name.hasSuffix("LayerNorm.weight") {
                t.buffer.update(repeating: 1)
            } else if e.shape.count == 1 {
                t.buffer.update(repeating: 0)
            } else {
                for k in 0..<t.count { t.data[k] = config.initializerRange * rng.normal() }
                if e.name == "bert.embeddings.word_embeddings.weight", config.padTokenId < config.vocabSize {
                    (t.data + config.padTokenId * config.hiddenSize).update(repeating: 0, count: config.hiddenSize)
                }
            }
        }
    }

    private func p(_ name: String) -> Tensor { params[name] }
    /// Parameter `name` as this forward pass sees it: through the interventions' weight view, if any.
    @inline(__always) private func p(_ name: String, _ iv: Interventions?, _ tape: Tape) -> Tensor {
        let w = params[name]
        return iv?.weight(name, w, tape) ?? w
    }
    /// Every viewed parameter must exist (a misspelt view would otherwise be a silent no-op).
    private func checkViews(_ iv: Interventions?) {
        guard let iv else { return }
        for name in iv.viewedParameters { precondition(params.contains(name), "weight view of unknown parameter \(name)") }
    }

    /// Encoder output [B*T, C] (the last hidden state). `interventions` may read or replace
    /// the tensor at every named site (see Sites.swift); nil runs the plain forward pass.
    public func encode(_ tape: Tape, _ batch: Batch, dropout: DropoutPlan = .none,
                       interventions iv: Interventions? = nil) -> Tensor {
        let c = config, B = batch.batchSize, T = batch.seqLen
        let NH = c.numHeads
        precondition(T <= c.maxPositions, "sequence length \(T) exceeds max positions \(c.maxPositions)")
        checkViews(iv)
        @inline(__always) func at(_ kind: SiteKind, _ l: Int, _ x: Tensor) -> Tensor {
            iv?.apply(Site(kind, l), x, tape) ?? x
        }
        let positions = (0..<B * T).map { Int32($0 % T) }
        let words = at(.embWord, 0, tape.embedding(p("bert.embeddings.word_embeddings.weight", iv, tape), ids: batch.ids,
                                                   paddingIndex: Int32(c.padTokenId)))
        var x = tape.add(tape.add(words, tape.embedding(p("bert.embeddings.position_embeddings.weight", iv, tape), ids: positions)),
                         tape.embedding(p("bert.embeddings.token_type_embeddings.weight", iv, tape), ids: batch.typeIds))
        x = tape.layerNorm(x, p("bert.embeddings.LayerNorm.weight", iv, tape), p("bert.embeddings.LayerNorm.bias", iv, tape), eps: c.layerNormEps)
        x = at(.emb, 0, tape.dropout(x, p: dropout.hidden, rng: dropout.rng(0)))

        // Additive mask [B, T]: 0 for real tokens, the most negative float for padding (as HF).
        let mask = Tensor(batch.attentionMask.map { $0 != 0 ? 0 : -Float.greatestFiniteMagnitude }, shape: [B, T])
        for l in 0..<c.numLayers {
            let pre = "bert.encoder.layer.\(l)."
            func proj(_ name: String) -> Tensor {
                tape.linear(x, p(pre + "attention.self.\(name).weight", iv, tape), p(pre + "attention.self.\(name).bias", iv, tape))
            }
            let probs = at(.attnProbs, l, tape.attentionProbs(q: proj("query"), k: proj("key"), batch: B, heads: NH, additiveMask: mask,
                                                              dropout: dropout.attention, rng: dropout.rng(16 * l + 1)))
            let ctx = at(.attnHeads, l, tape.attentionContext(probs, v: proj("value"), batch: B, heads: NH))
            var a = tape.linear(ctx, p(pre + "attention.output.dense.weight", iv, tape), p(pre + "attention.output.dense.bias", iv, tape))
            a = at(.attnOut, l, tape.dropout(a, p: dropout.hidden, rng: dropout.rng(16 * l + 2)))
            x = at(.ffnIn, l, tape.layerNorm(tape.add(a, x), p(pre + "attention.output.LayerNorm.weight", iv, tape),
                                             p(pre + "attention.output.LayerNorm.bias", iv, tape), eps: c.layerNormEps))
            let hPre = at(.ffnPre, l, tape.linear(x, p(pre + "intermediate.dense.weight", iv, tape), p(pre + "intermediate.dense.bias", iv, tape)))
            let h = at(.ffnAct, l, tape.gelu(hPre))
            var o = tape.linear(h, p(pre + "output.dense.weight", iv, tape), p(pre + "output.dense.bias", iv, tape))
            o = at(.ffnOut, l, tape.dropout(o, p: dropout.hidden, rng: dropout.rng(16 * l + 3)))
            x = at(.block, l, tape.layerNorm(tape.add(o, x), p(pre + "output.LayerNorm.weight", iv, tape), p(pre + "output.LayerNorm.bias", iv, tape),
                                             eps: c.layerNormEps))
        }
        return x
    }

    /// MLM logits [N, V] for the given rows of the hidden states [B*T, C] (all rows when nil).
    /// `interventions`: their weight views apply to the head too (the decoder is tied to the
    /// word embeddings, so a view of those changes both ends alike).
    public func mlmLogits(_ tape: Tape, _ hidden: Tensor, rows: [Int32]? = nil, interventions iv: Interventions? = nil) -> Tensor {
        precondition(head == .mlm, "model has no MLM head")
        let h = rows.map { tape.gatherRows(hidden, $0) } ?? hidden
        var t = tape.gelu(tape.linear(h, p("cls.predictions.transform.dense.weight", iv, tape), p("cls.predictions.transform.dense.bias", iv, tape)))
        t = tape.layerNorm(t, p("cls.predictions.transform.LayerNorm.weight", iv, tape), p("cls.predictions.transform.LayerNorm.bias", iv, tape),
                           eps: config.layerNormEps)
        return tape.linear(t, p("bert.embeddings.word_embeddings.weight", iv, tape), p("cls.predictions.bias", iv, tape))
    }

    /// Masked-LM loss: mean cross-entropy over positions whose label is not -100. The head is
    /// evaluated only at labelled positions (the loss is identical to the dense one).
    public func mlmLoss(_ tape: Tape, _ batch: Batch, labels: [Int32], dropout: DropoutPlan = .none,
                        interventions: Interventions? = nil) -> Tensor {
        precondition(labels.count == batch.ids.count, "labels \(labels.count) != ids \(batch.ids.count)")
        let hidden = encode(tape, batch, dropout: dropout, interventions: interventions)
        var rows: [Int32] = [], targets: [Int32] = []
        for (i, l) in labels.enumerated() where l != -100 { rows.append(Int32(i)); targets.append(l) }
        return tape.crossEntropy(mlmLogits(tape, hidden, rows: rows, interventions: interventions), targets: targets)
    }

    /// QA start and end logits, each [B, T], from the encoder output [B*T, C].
    public func qaLogits(_ tape: Tape, _ hidden: Tensor, batchSize B: Int) -> (start: Tensor, end: Tensor) {
        precondition(head == .qa, "model has no QA head")
        let w = p("qa_outputs.weight"), b = p("qa_outputs.bias")
        func column(_ k: Int) -> Tensor {
            tape.linear(hidden, w.slice(rows: k..<k + 1), b.slice(rows: k..<k + 1)).reshaped([B, hidden.rows / B])
        }
        return (column(0), column(1))
    }

    /// QA loss as Hugging Face: mean of the start and end cross-entropies over the batch.
    public func qaLoss(_ tape: Tape, _ batch: Batch, start: [Int32], end: [Int32], dropout: DropoutPlan = .none) -> Tensor {
        let (s, e) = qaLogits(tape, encode(tape, batch, dropout: dropout), batchSize: batch.batchSize)
        return tape.scale(tape.add(tape.crossEntropy(s, targets: start), tape.crossEntropy(e, targets: end)), 0.5)
    }
}
