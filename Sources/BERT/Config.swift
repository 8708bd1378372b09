// BERT hyper-parameters, Codable with Hugging Face `config.json` key names, and presets.

import Foundation

public struct BertConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var typeVocabSize: Int = 2
    public var layerNormEps: Float = 1e-12
    public var hiddenDropout: Float = 0.1
    public var attentionDropout: Float = 0.1
    public var initializerRange: Float = 0.02
    public var padTokenId: Int = 0
    public var hiddenAct: String = "gelu"
    public var modelType: String = "bert"
    public var positionEmbeddingType: String = "absolute"

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", numLayers = "num_hidden_layers"
        case numHeads = "num_attention_heads", intermediateSize = "intermediate_size"
        case maxPositions = "max_position_embeddings", typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps", hiddenDropout = "hidden_dropout_prob"
        case attentionDropout = "attention_probs_dropout_prob", initializerRange = "initializer_range"
        case padTokenId = "pad_token_id", hiddenAct = "hidden_act", modelType = "model_type"
        case positionEmbeddingType = "position_embedding_type"
    }

    public init(vocabSize: Int, hiddenSize: Int, numLayers: Int, numHeads: Int, intermediateSize: Int,
                maxPositions: Int = 512) {
        self.vocabSize = vocabSize; self.hiddenSize = hiddenSize; self.numLayers = numLayers
        self.numHeads = numHeads; self.intermediateSize = intermediateSize; self.maxPositions = maxPositions
    }

    /// Named sizes (L layers, H hidden, A heads, FFN intermediate).
    public static let presets: [(name: String, layers: Int, hidden: Int, heads: Int, ffn: Int)] = [
        ("tiny", 2, 128, 2, 512), ("mini", 4, 256, 4, 1024), ("small", 4, 512, 8, 2048),
        ("medium", 8, 512, 8, 2048), ("base", 12, 768, 12, 3072),
    ]

    public init(preset: String, vocabSize: Int, maxPositions: Int = 512) throws {
        guard let p = Self.presets.first(where: { $0.name == preset }) else {
            throw ConfigError("unknown preset '\(preset)' (known: \(Self.presets.map(\.name).joined(separator: ", ")))")
        }
        self.init(vocabSize: vocabSize, hiddenSize: p.hidden, numLayers: p.layers, numHeads: p.heads,
                  intermediateSize: p.ffn, maxPositions: maxPositions)
    }

    /// Decodes any Hugging Face BERT config.json: the five sizes are required, the rest
    /// fall back to BERT's defaults (unknown keys are ignored).
    public init(from decoder: Decoder) throws {
        let k = try decoder.container(keyedBy: CodingKeys.self)
        self.init(vocabSize: try k.decode(Int.self, forKey: .vocabSize), hiddenSize: try k.decode(Int.self, forKey: .hiddenSize),
                  numLayers: try k.decode(Int.self, forKey: .numLayers), numHeads: try k.decode(Int.self, forKey: .numHeads),
                  intermediateSize: try k.decode(Int.self, forKey: .intermediateSize))
        func opt<T: Decodable>(_ key: CodingKeys, _ v: inout T) throws { v = try k.decodeIfPresent(T.self, forKey: key) ?? v }
        try opt(.maxPositions, &maxPositions); try opt(.typeVocabSize, &typeVocabSize)
        try opt(.layerNormEps, &layerNormEps); try opt(.hiddenDropout, &hiddenDropout)
        try opt(.attentionDropout, &attentionDropout); try opt(.initializerRange, &initializerRange)
        try opt(.padTokenId, &padTokenId); try opt(.hiddenAct, &hiddenAct); try opt(.modelType, &modelType)
        try opt(.positionEmbeddingType, &positionEmbeddingType)
    }

    public var headSize: Int { hiddenSize / numHeads }

    /// Checks that the sizes are usable; the message names the offending field.
    public func validate() throws {
        for (name, v) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", numLayers),
                          ("num_attention_heads", numHeads), ("intermediate_size", intermediateSize),
                          ("max_position_embeddings", maxPositions), ("type_vocab_size", typeVocabSize)] where v <= 0 {
            throw ConfigError("\(name) must be positive, got \(v)")
        }
        // sizes from a file must not ask for more memory than the machine has (allocation traps)
        let C = Double(hiddenSize), F = Double(intermediateSize)
        let parameters = (Double(vocabSize) + Double(maxPositions) + Double(typeVocabSize)) * C
            + Double(numLayers) * (4 * C * C + 2 * C * F + 9 * C + F) + C * C + Double(vocabSize)
        if parameters * 4 > Double(ProcessInfo.processInfo.physicalMemory) {
            throw ConfigError("sizes need \(Int(parameters * 4 / 1e9)) GB of parameters, more than this machine's memory")
        }
        if hiddenSize % numHeads != 0 {
            throw ConfigError("hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numHeads)")
        }
        for (name, p) in [("hidden_dropout_prob", hiddenDropout), ("attention_probs_dropout_prob", attentionDropout)]
            where !(p >= 0 && p < 1) {
            throw ConfigError("\(name) must be in [0, 1), got \(p)")
        }
        if hiddenAct != "gelu" { throw ConfigError("hidden_act '\(hiddenAct)' is not supported (only gelu)") }
        if positionEmbeddingType != "absolute" {
            throw ConfigError("position_embedding_type '\(positionEmbeddingType)' is not supported (only absolute)")
        }
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
