// The knowledge evaluators on a tiny model that knows its facts (FactModel): assertions that
// fail when the mechanism or the protocol is wrong.

import Autograd
import BERT
@testable import Evaluators
import Foundation
import Interventions
import XCTest

final class KnowledgeEvaluatorTests: XCTestCase {
    func testFactModelKnowsItsFacts() throws {
        let k = try FactModel.setup()
        var o = ConsistencyOptions(); o.source.probes = FactModel.trained.probes
        let (r, records) = try Consistency.run(checkpoint: FactModel.trained.checkpoint, options: o, log: { _ in })
        print("fact model: accuracy \(r.accuracy), consistency \(r.consistency ?? .nan), unique predictions \(r.uniquePredictions)")
        XCTAssertGreaterThan(r.accuracy, 0.95)
        XCTAssertEqual(records.count, k.probes.probes.count)
        XCTAssertEqual(r.consistency ?? 0, 1, accuracy: 0.05)
    }

    /// Completeness: sum of attributions -> F(x) - F(0) as the Riemann sum is refined.
    func testIGCompletenessShrinksWithSteps() throws {
        let k = try FactModel.setup()
        func error(_ steps: Int) -> Double {
            let a = IntegratedGradients.attributions(k, k.probes.tokenized, kind: .ffnPre, layers: [0, 1], position: .mask,
                                                     alphas: IGOptions.midpoints(steps), batch: 256)
            let e = a.flatMap { x in (0..<2).compactMap { x.completenessError($0) } }
            return e.reduce(0, +) / Double(e.count)
        }
        let (e5, e50) = (error(5), error(50))
        print("IG completeness error: 5 steps \(e5), 50 steps \(e50)")
        XCTAssertLessThan(e50, 0.01)
        XCTAssertLessThan(e50, e5 / 3)
    }

    /// Suppressing the knowledge neurons found by IG lowers the fact's probability far more
    /// than suppressing as many random neurons of the same layers.
    func testKnowledgeNeuronSuppressionBeatsRandom() throws {
        var o = KNOptions(); o.source.probes = FactModel.trained.probes; o.steps = 10
        let (r, records) = try KnowledgeNeurons.run(checkpoint: FactModel.trained.checkpoint, options: o, log: { _ in })
        print("kn: \(r.neuronsPerProbe) neurons/probe, \(r.clustersPerConcept) clusters/concept, suppress own \(r.suppress.own), random \(r.suppress.random), amplify own \(r.amplify.own)")
        XCTAssertGreaterThan(r.neuronsPerProbe, 0)
        XCTAssertEqual(records.count, FactModel.subjects.count * 5)
        // the model is sure of its facts (P ~ 0.99), so effects are small in absolute terms
        XCTAssertLessThan(r.suppress.own.probChange, 0)
        XCTAssertLessThan(r.suppress.own.probChange, 10 * r.suppress.random.probChange)
    }

    /// Restoring the clean state at the last subject token recovers most of the effect of
    /// corrupting the subject (block output, first layer).
    func testTraceRestoresAtTheSubject() throws {
        var o = TraceOptions(); o.source.probes = FactModel.trained.probes; o.samples = 5
        let (r, _) = try CausalTrace.run(checkpoint: FactModel.trained.checkpoint, options: o, log: { _ in })
        let block = r.kinds.first { $0.kind == "block" }!
        let last = block.classes.firstIndex(of: "subject-last")!, mask = block.classes.firstIndex(of: "mask")!
        let te = r.totalEffect!
        print("trace: \(r.traced) probes, total effect \(te), block IE at subject-last by layer \(block.indirectEffect.map { $0[last] ?? .nan }), at mask \(block.indirectEffect.map { $0[mask] ?? .nan })")
        XCTAssertGreaterThan(r.traced, 60)
        XCTAssertGreaterThan(te, 0.3)
        XCTAssertGreaterThan(block.indirectEffect[0][last]! / te, 0.5)
        // the last layer's [MASK] state carries everything, the subject's carries nothing there
        XCTAssertGreaterThan(block.indirectEffect[1][mask]! / te, 0.9)
    }

    /// Patching the source's subject state into the base run moves the base's answer.
    func testInterchangeAtTheSubjectMovesTheAnswer() throws {
        var o = InterchangeOptions(); o.source.probes = FactModel.trained.probes; o.kinds = ["emb", "block"]; o.positions = [.subjectLast, .cls]
        let (r, records) = try Interchange.run(checkpoint: FactModel.trained.checkpoint, options: o, log: { _ in })
        func acc(_ kind: String, _ layer: Int, _ pos: Position) -> Double {
            r.cells.first { $0.kind == kind && $0.layer == layer && $0.position == pos.rawValue }!.interchangeAccuracy
        }
        print("interchange: \(r.pairs) pairs; emb subject-last \(acc("emb", 0, .subjectLast)), block@0 subject-last "
              + "\(acc("block", 0, .subjectLast)), block@0 cls \(acc("block", 0, .cls))")
        XCTAssertEqual(records.count, r.pairs)
        // same pattern, one-token subjects: the source's subject embedding makes the base the source
        XCTAssertGreaterThan(acc("emb", 0, .subjectLast), 0.95)
        // after layer 0 the subject is also in the other positions (attention), so less moves
        XCTAssertGreaterThan(acc("block", 0, .subjectLast), 0.3)
        XCTAssertLessThan(acc("block", 0, .cls), 0.05)
    }

    func testLensLastLayerIsThePrediction() throws {
        var o = LensOptions(); o.source.probes = FactModel.trained.probes
        let (r, records) = try LogitLens.run(checkpoint: FactModel.trained.checkpoint, options: o, log: { _ in })
        XCTAssertEqual(r.layers.count, 3)
        XCTAssertGreaterThan(r.layers[2].accuracy, 0.95)
        XCTAssertLessThan(r.layers[0].accuracy, r.layers[2].accuracy)
        XCTAssertTrue(records.allSatisfy { $0.prediction == $0.top1[2] })
    }
}
