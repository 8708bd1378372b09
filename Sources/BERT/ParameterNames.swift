// The Hugging Face names of BERT's parameters, built in one place: a module (`.ffnOut(3)`)
// gives its `weight` and `bias` names ("bert.encoder.layer.3.output.dense.weight"). The model,
// the checkpoints and every evaluator that edits or reads a weight name parameters this way.

public enum BertModule: Hashable, Sendable {
    case wordEmbeddings, positionEmbeddings, tokenTypeEmbeddings, embeddingsLayerNorm
    case query(Int), key(Int), value(Int)            // attention projections of a layer
    case attentionOut(Int), attentionLayerNorm(Int)
    case ffnIn(Int)                                  // the intermediate (up) projection
    case ffnOut(Int)                                 // the output (down) projection
    case outputLayerNorm(Int)
    case mlmTransform, mlmLayerNorm                  // the MLM head (its decoder is tied to wordEmbeddings)
    case qaOutputs                                   // the QA head

    public var prefix: String {
        func layer(_ l: Int, _ s: String) -> String { "bert.encoder.layer.\(l).\(s)" }
        switch self {
        case .wordEmbeddings: return "bert.embeddings.word_embeddings"
        case .positionEmbeddings: return "bert.embeddings.position_embeddings"
        case .tokenTypeEmbeddings: return "bert.embeddings.token_type_embeddings"
        case .embeddingsLayerNorm: return "bert.embeddings.LayerNorm"
        case .query(let l): return layer(l, "attention.self.query")
        case .key(let l): return layer(l, "attention.self.key")
        case .value(let l): return layer(l, "attention.self.value")
        case .attentionOut(let l): return layer(l, "attention.output.dense")
        case .attentionLayerNorm(let l): return layer(l, "attention.output.LayerNorm")
        case .ffnIn(let l): return layer(l, "intermediate.dense")
        case .ffnOut(let l): return layer(l, "output.dense")
        case .outputLayerNorm(let l): return layer(l, "output.LayerNorm")
        case .mlmTransform: return "cls.predictions.transform.dense"
        case .mlmLayerNorm: return "cls.predictions.transform.LayerNorm"
        case .qaOutputs: return "qa_outputs"
        }
    }
    public var weight: String { prefix + ".weight" }
    public var bias: String { prefix + ".bias" }
    /// The MLM decoder's own bias (its weight is the word embeddings).
    public static let mlmBias = "cls.predictions.bias"
}
