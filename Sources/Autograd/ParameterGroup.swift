// A parameter group: which tensors an optimizer trains and which of those it decays. Members
// are flat parameter stores: the model's own (`Parameters` of a BertModel) and any store an
// edit owns (mask logits, LoRA A/B, LoReFT R/W/b). Building a group sets `requiresGrad` on
// every view, so frozen tensors record no backward step and receive no gradient; the
// optimizer updates only the trainable ranges (a frozen tensor gets no step and no decay).

public struct ParameterGroup {
    public struct Member {
        public let params: Parameters
        public let trains: (String) -> Bool
        public let decays: (String) -> Bool
    }
    public private(set) var members: [Member] = []

    public init() {}

    /// Add a store: tensors whose name satisfies `trains` are trained, of those the ones
    /// satisfying `decays` get weight decay. Sets `requiresGrad` of every view of `params`.
    public mutating func add(_ params: Parameters, trains: @escaping (String) -> Bool = { _ in true },
                             decays: @escaping (String) -> Bool) {
        precondition(!members.contains { $0.params === params }, "parameter store added to a group twice")
        params.setTrainable(trains)
        members.append(Member(params: params, trains: trains, decays: decays))
    }

    public func adding(_ params: Parameters, trains: @escaping (String) -> Bool = { _ in true },
                       decays: @escaping (String) -> Bool) -> ParameterGroup {
        var g = self; g.add(params, trains: trains, decays: decays); return g
    }

    /// Names of the trainable tensors, member by member.
    public var trainableNames: [[String]] { members.map { m in m.params.entries.map(\.name).filter(m.trains) } }
    public var trainableCount: Int {
        members.reduce(0) { acc, m in acc + m.params.entries.filter { m.trains($0.name) }.reduce(0) { $0 + $1.count } }
    }

    public func zeroGrads() { for m in members { m.params.zeroGrads() } }

    /// Global L2 norm of every member's gradient (frozen gradients are zero).
    public func gradNorm() -> Double {
        members.count == 1 ? members[0].params.gradNorm() : members.reduce(0) { $0 + $1.params.gradSquaredNorm() }.squareRoot()
    }
}
