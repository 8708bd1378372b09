// BERT encoder with the semantics of Hugging Face BertModel (post-LN, learned absolute
// positions, token types, GELU FFN), plus the masked-LM head (decoder tied to the word
// embeddings) and the extractive-QA head.
// Shape legend: B batch, T tokens, C hidden, NH heads, HS head size, F FFN size, V vocab.

import Autograd
import Interventions

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
            (BertModule.wordEmbeddings.weight, [c.vocabSize, C]),
            (BertModule.positionEmbeddings.weight, [c.maxPositions, C]),
            (BertModule.tokenTypeEmbeddings.weight, [c.typeVocabSize, C]),
            (BertModule.embeddingsLayerNorm.weight, [C]), (BertModule.embeddingsLayerNorm.bias, [C]),
        ]
        func linear(_ m: BertModule, out: Int, in n: Int) -> [(String, [Int])] { [(m.weight, [out, n]), (m.bias, [out])] }
        func norm(_ m: BertModule) -> [(String, [Int])] { [(m.weight, [C]), (m.bias, [C])] }
        for i in 0..<c.numLayers {
            s += linear(.query(i), out: C, in: C) + linear(.key(i), out: C, in: C) + linear(.value(i), out: C, in: C)
            s += linear(.attentionOut(i), out: C, in: C) + norm(.attentionLayerNorm(i))
            s += linear(.ffnIn(i), out: F, in: C) + linear(.ffnOut(i), out: C, in: F) + norm(.outputLayerNorm(i))
        }
        switch head {
        case .mlm:
            s += linear(.mlmTransform, out: C, in: C) + norm(.mlmLayerNorm) + [(BertModule.mlmBias, [c.vocabSize])]
        case .qa:
            s += linear(.qaOutputs, out: 2, in: C)
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
                if e.name == BertModule.wordEmbeddings.weight, config.padTokenId < config.vocabSize {
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
    /// the tensor at every named site (see Interventions/Sites.swift); nil runs the plain forward pass.
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
        let words = at(.embWord, 0, tape.embedding(p(BertModule.wordEmbeddings.weight, iv, tape), ids: batch.ids,
                                                   paddingIndex: Int32(c.padTokenId)))
        var x = tape.add(tape.add(words, tape.embedding(p(BertModule.positionEmbeddings.weight, iv, tape), ids: positions)),
                         tape.embedding(p(BertModule.tokenTypeEmbeddings.weight, iv, tape), ids: batch.typeIds))
        x = tape.layerNorm(x, p(BertModule.embeddingsLayerNorm.weight, iv, tape), p(BertModule.embeddingsLayerNorm.bias, iv, tape), eps: c.layerNormEps)
        x = at(.emb, 0, tape.dropout(x, p: dropout.hidden, rng: dropout.rng(0)))

        // Additive mask [B, T]: 0 for real tokens, the most negative float for padding (as HF).
        let mask = Tensor(batch.attentionMask.map { $0 != 0 ? 0 : -Float.greatestFiniteMagnitude }, shape: [B, T])
        for l in 0..<c.numLayers {
            func linear(_ x: Tensor, _ m: BertModule) -> Tensor { tape.linear(x, p(m.weight, iv, tape), p(m.bias, iv, tape)) }
            func norm(_ x: Tensor, _ m: BertModule) -> Tensor { tape.layerNorm(x, p(m.weight, iv, tape), p(m.bias, iv, tape), eps: c.layerNormEps) }
            func proj(_ m: BertModule) -> Tensor { linear(x, m) }
            let probs = at(.attnProbs, l, tape.attentionProbs(q: proj(.query(l)), k: proj(.key(l)), batch: B, heads: NH, additiveMask: mask,
                                                              dropout: dropout.attention, rng: dropout.rng(16 * l + 1)))
            let ctx = at(.attnHeads, l, tape.attentionContext(probs, v: proj(.value(l)), batch: B, heads: NH))
            var a = linear(ctx, .attentionOut(l))
            a = at(.attnOut, l, tape.dropout(a, p: dropout.hidden, rng: dropout.rng(16 * l + 2)))
            x = at(.ffnIn, l, norm(tape.add(a, x), .attentionLayerNorm(l)))
            let hPre = at(.ffnPre, l, linear(x, .ffnIn(l)))
            let h = at(.ffnAct, l, tape.gelu(hPre))
            var o = linear(h, .ffnOut(l))
            o = at(.ffnOut, l, tape.dropout(o, p: dropout.hidden, rng: dropout.rng(16 * l + 3)))
            x = at(.block, l, norm(tape.add(o, x), .outputLayerNorm(l)))
        }
        return x
    }

    /// MLM logits [N, V] for the given rows of the hidden states [B*T, C] (all rows when nil).
    /// `interventions`: their weight views apply to the head too (the decoder is tied to the
    /// word embeddings, so a view of those changes both ends alike).
    public func mlmLogits(_ tape: Tape, _ hidden: Tensor, rows: [Int32]? = nil, interventions iv: Interventions? = nil) -> Tensor {
        precondition(head == .mlm, "model has no MLM head")
        let h = rows.map { tape.gatherRows(hidden, $0) } ?? hidden
        var t = tape.gelu(tape.linear(h, p(BertModule.mlmTransform.weight, iv, tape), p(BertModule.mlmTransform.bias, iv, tape)))
        t = tape.layerNorm(t, p(BertModule.mlmLayerNorm.weight, iv, tape), p(BertModule.mlmLayerNorm.bias, iv, tape), eps: config.layerNormEps)
        return tape.linear(t, p(BertModule.wordEmbeddings.weight, iv, tape), p(BertModule.mlmBias, iv, tape))
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
        let w = p(BertModule.qaOutputs.weight), b = p(BertModule.qaOutputs.bias)
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
