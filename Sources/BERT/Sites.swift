// Named places in the forward pass (sites) and the one hook point the model offers there.
// `encode` asks its `Interventions` (if any) for the tensor to use at each site:
//     x = interventions?.apply(Site(.ffnPre, l), x, tape) ?? x
// A hook is built from tape ops, so gradients flow through it; with no interventions the
// forward pass is exactly the plain one. Evaluators never reach into the model otherwise.
// Shapes at each site (B batch, T tokens, C hidden, F FFN size): every site is [B*T, C]
// except ffn.pre and ffn.act, which are [B*T, F].

import Autograd

public enum SiteKind: String, CaseIterable, Codable, Sendable {
    case embWord = "emb.word"     // word-embedding lookup, before position/type embeddings are added
    case emb                      // embedding output after LayerNorm (and dropout)
    case attnHeads = "attn.heads" // per-head attention context, head h in columns h*HS..<(h+1)*HS
    case attnOut = "attn.out"     // attention output projection, before the residual add
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

/// The hooks in force for one forward pass, by site, applied in the order they were added.
public final class Interventions {
    public typealias Hook = (_ x: Tensor, _ tape: Tape) -> Tensor
    private var hooks: [Site: [Hook]] = [:]

    public init() {}

    public func add(_ site: Site, _ hook: @escaping Hook) { hooks[site, default: []].append(hook) }
    public var isEmpty: Bool { hooks.isEmpty }
    public var sites: [Site] { Array(hooks.keys) }

    /// The tensor to use at `site` (nil when no hook is there).
    @inline(__always)
    func apply(_ site: Site, _ x: Tensor, _ tape: Tape) -> Tensor? {
        guard let hs = hooks[site] else { return nil }
        return hs.reduce(x) { $1($0, tape) }
    }
}
