// Named places in the forward pass (sites) and the one hook point the model offers there.
// `encode` asks its `Interventions` (if any) for the tensor to use at each site:
//     x = interventions?.apply(Site(.ffnPre, l), x, tape) ?? x
// A hook is built from tape ops, so gradients flow through it; with no interventions the
// forward pass is exactly the plain one. Evaluators never reach into the model otherwise.
// The same object carries weight views (the weight level of the same mechanism): every
// parameter the forward pass reads by its Hugging Face name is first offered to the views
//     w = interventions?.weight(BertModule.ffnOut(3).weight, w, tape) ?? w
// and a view returns the tensor `linear` (or LayerNorm, embedding) uses instead: W ⊙ M, W + (α/r)·B·A,
// W + ΔW, built from tape ops so gradients reach the edit's own tensors. One object for both
// levels: an edit may combine them, and every forward entry point that takes interventions
// honours both with nothing else threaded through.
// Shapes at each site (B batch, T tokens, C hidden, F FFN size, NH heads): every site is
// [B*T, C] except ffn.pre and ffn.act, which are [B*T, F], and attn.probs, [B*T, NH*T] (row
// b*T + t: query position t of example b; its width depends on the batch's padded length).

import Autograd

public enum SiteKind: String, CaseIterable, Codable, Sendable {
    case embWord = "emb.word"     // word-embedding lookup, before position/type embeddings are added
    case emb                      // embedding output after LayerNorm (and dropout)
    case attnProbs = "attn.probs" // attention weights after dropout, head h's over the keys in columns h*T..<(h+1)*T
    case attnHeads = "attn.heads" // per-head attention context, head h in columns h*HS..<(h+1)*HS
    case attnOut = "attn.out"     // attention output projection, before the residual add
    case ffnIn = "ffn.in"         // the attention block's output after its LayerNorm (the FFN's input)
    case ffnPre = "ffn.pre"       // intermediate.dense output, before GELU
    case ffnAct = "ffn.act"       // after GELU (the input of output.dense)
    case ffnOut = "ffn.out"       // output.dense, before the residual add
    case block                    // the layer's output after its output LayerNorm

    /// Sites with one instance per layer (emb and emb.word have one in all).
    public var perLayer: Bool { self != .emb && self != .embWord }
}

public struct Site: Hashable, Sendable, CustomStringConvertible {
    public var kind: SiteKind
    public var layer: Int          // 0 for emb and emb.word
    public init(_ kind: SiteKind, _ layer: Int = 0) {
        self.kind = kind; self.layer = kind.perLayer ? layer : 0
    }
    public var description: String { kind.perLayer ? "\(kind.rawValue)@\(layer)" : kind.rawValue }

    /// Parses "ffn.pre" or "ffn.pre@3".
    public init?(parsing s: String) {
        let parts = s.split(separator: "@", maxSplits: 1).map(String.init)
        guard let kind = SiteKind(rawValue: parts[0]) else { return nil }
        if parts.count == 2 {
            guard let l = Int(parts[1]), l >= 0 else { return nil }
            self.init(kind, l)
        } else { self.init(kind) }
    }
}

/// The hooks in force for one forward pass, by site, and the weight views by parameter name,
/// each applied in the order they were added.
public final class Interventions {
    public typealias Hook = (_ x: Tensor, _ tape: Tape) -> Tensor
    public typealias WeightView = (_ w: Tensor, _ tape: Tape) -> Tensor
    private var hooks: [Site: [Hook]] = [:]
    private var views: [String: [WeightView]] = [:]

    public init() {}

    public func add(_ site: Site, _ hook: @escaping Hook) { hooks[site, default: []].append(hook) }
    /// The forward pass uses view(w) wherever it reads the parameter `name` (an HF name).
    public func view(_ name: String, _ view: @escaping WeightView) { views[name, default: []].append(view) }
    public var isEmpty: Bool { hooks.isEmpty && views.isEmpty }
    public var sites: [Site] { Array(hooks.keys) }
    public var viewedParameters: [String] { views.keys.sorted() }

    /// The tensor to use for parameter `name` (nil when no view is there).
    @inline(__always)
    public func weight(_ name: String, _ w: Tensor, _ tape: Tape) -> Tensor? {
        guard let vs = views[name] else { return nil }
        return vs.reduce(w) { $1($0, tape) }
    }

    /// The tensor to use at `site` (nil when no hook is there).
    @inline(__always)
    package func apply(_ site: Site, _ x: Tensor, _ tape: Tape) -> Tensor? {
        guard let hs = hooks[site] else { return nil }
        return hs.reduce(x) { $1($0, tape) }
    }
}
