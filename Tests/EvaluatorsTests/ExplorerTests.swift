// `droplab explore` on the fact model (FactModel) against an untrained model of the same
// vocabulary: the page's embedded JSON holds exactly the records `eval lens`, `trace` and `kn`
// write for the same prompts, and the page opens in headless Chromium without errors.

import BERT
import Checkpoint
@testable import Datasets
@testable import Evaluators
import Foundation
import TestSupport
import Text
@testable import Viz
import XCTest

final class ExplorerTests: XCTestCase {
    /// Four prompts: three facts of the fact model (two paraphrases of one fact) and one
    /// without a subject; both checkpoints; every evaluator one probe at a time (--batch 1).
    static let page: (dir: String, probes: String, checkpoints: [String], html: String, cli: CLIResult) = {
        let dir = NSTemporaryDirectory() + "droplab-explore-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let lines = FactModel.probeLines()
        let noSubject = #"{"prompt": "the field of chain is [MASK] .", "target": "music"}"#
        let probes = dir + "/probes.jsonl"
        try! ([lines[0], lines[1], lines[5], noSubject].joined(separator: "\n") + "\n").write(toFile: probes, atomically: true, encoding: .utf8)
        // B: the fact model's architecture, untrained
        let trained = try! Checkpoint.load(FactModel.trained.checkpoint)
        let untrained = BertModel(config: trained.model.config)
        untrained.initialize(seed: 11)
        try! Checkpoint.save(untrained, vocab: trained.vocab, to: dir + "/untrained.h5")
        let checkpoints = [FactModel.trained.checkpoint, dir + "/untrained.h5"]
        let cli = try! runDroplab(["explore"] + checkpoints + ["--probes", probes, "--batch", "1", "--samples", "3", "--steps", "5",
                                                              "--out", dir + "/page.html"])
        return (dir, probes, checkpoints, (try? String(contentsOfFile: dir + "/page.html", encoding: .utf8)) ?? "", cli)
    }()

    override class func tearDown() { try? FileManager.default.removeItem(atPath: page.dir) }

    /// The JSON the page embeds.
    static func embedded(_ html: String) throws -> ExplorePage {
        let open = #"<script type="application/json" id="explore-data">"#
        guard let a = html.range(of: open), let b = html.range(of: "</script>", range: a.upperBound..<html.endIndex) else {
            throw XCTSkip("no embedded JSON in the page")
        }
        return try JSONDecoder().decode(ExplorePage.self, from: Data(html[a.upperBound..<b.lowerBound].utf8))
    }

    func testPageEmbedsTheEvaluatorsRecords() throws {
        let (_, probes, checkpoints, html, cli) = Self.page
        XCTAssertEqual(cli.status, 0, cli.stderr)
        let page = try Self.embedded(html)
        XCTAssertEqual(page.checkpoints.map(\.path), checkpoints)
        XCTAssertEqual(page.prompts.count, 4)
        var source = ProbeOptions(); source.probes = probes; source.batch = 1
        var traced = 0
        for (c, checkpoint) in checkpoints.enumerated() {
            var lo = LensOptions(); lo.source = source
            var to = TraceOptions(); to.source = source; to.samples = 3
            var ko = KNOptions(); ko.source = source; ko.steps = 5
            let lens = try LogitLens.run(checkpoint: checkpoint, options: lo, log: { _ in }).records
            let trace = try CausalTrace.run(checkpoint: checkpoint, options: to, log: { _ in }).records
            let kn = try KnowledgeNeurons.run(checkpoint: checkpoint, options: ko, log: { _ in }).records
            XCTAssertEqual(lens.count, page.prompts.count)
            for (i, p) in page.prompts.enumerated() {
                let v = p.views[c]
                // exact: the page (the explore CLI) and these records (this process) run the same code on the
                // same shapes (--batch 1 on both sides), so they agree bit for bit only if both processes use
                // the same OpenBLAS kernel; the CLI re-executing itself with another one
                // (Machine.ensureBestBLASKernel) would need a derived tolerance here instead
                XCTAssertEqual(v.lens, lens[i], "lens record, checkpoint \(c), prompt \(i)")
                var neurons = kn[i]; neurons.cluster = nil
                XCTAssertEqual(v.neurons, neurons, "kn record, checkpoint \(c), prompt \(i)")
                XCTAssertEqual(v.trace == nil, p.subject == nil)
                if let t = trace.first(where: { $0.prompt == p.prompt }) {     // probes the model gets right
                    XCTAssertEqual(v.trace, t, "trace record, checkpoint \(c), prompt \(i)")
                    traced += 1
                }
                // the lens grid's [MASK] column is the lens record; attention rows are distributions
                let m = p.maskPosition
                // The grid runs the MLM head on all T positions (GEMM M = T), the record on the [MASK] row
                // alone (M = 1), and a kernel may sum the head's K = 64 products in another order for the
                // two shapes (OpenBLAS Haswell and Prescott do; SkylakeX's small-matrix kernel does not).
                // Two orders of its 3 stages (transform, LayerNorm, decoder) differ by RMS √2 u √(3 * 64 / 6)
                // = 4.8e-7 of the logits' scale (|z| <= 12: the fact model's largest, 11.8): 5.8e-6; δp/p <=
                // 2 max|δz|, so 6 RMS is 7e-5 within rtol 1e-4 (was 1e-5: 1.7 RMS; measured 2.2e-6 on
                // Prescott). atol 1e-9 is for probabilities below 1e-5.
                assertClose(v.lensGrid.prob.map { $0[m] }, v.lens.prob, rtol: 1e-4, atol: 1e-9, "lens grid at [MASK]")
                // exact argmax of logits that differ by <= 5.8e-6 RMS (above; ~5e-7 for the untrained
                // model's |z| ~ 1): a flip needs the two best logits that close, which the untrained model's
                // near-uniform logits make possible but rare (~1e-5 a cell for gaps spread over ~0.1 nat)
                XCTAssertEqual(v.lensGrid.top1.map { $0[m] }, v.lens.top1)
                // a float32 softmax over T <= 8 keys (Swift code, the same on every CPU) summed in Double:
                // |sum - 1| <= (2T + 1) u = 1e-6, 10x below 1e-5
                for heads in v.attention { for w in heads { XCTAssertEqual(w.reduce(0, +), 1, accuracy: 1e-5) } }
                XCTAssertEqual(v.top.count, 10)
                XCTAssertEqual(v.top.first?.token, v.lens.top1.last)
            }
        }
        XCTAssertEqual(traced, 3, "the fact model gets its three facts right; the untrained model none")
        XCTAssertTrue(page.prompts[0].views[0].neurons.neurons.count > 0)
    }

    /// Without --target the target is the model's most probable word; the page names the flags' settings.
    func testPromptWithoutTargetUsesThePrediction() throws {
        let dir = try temporaryDirectory(self)
        let r = try runDroplab(["explore", FactModel.trained.checkpoint, "--prompt", "dog lived in [MASK] .", "--subject", "dog",
                                "--samples", "2", "--steps", "3", "--out", dir + "/one.html"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let page = try Self.embedded(try String(contentsOfFile: dir + "/one.html", encoding: .utf8))
        let p = try XCTUnwrap(page.prompts.first)
        XCTAssertEqual(p.views.count, 1)
        XCTAssertEqual(p.target, p.views[0].top[0].token)
        XCTAssertTrue(FactModel.countries.contains(p.target), "the fact model's answer is a country, got \(p.target)")
        XCTAssertEqual(p.subjectPositions, [1])
    }

    /// `droplab predict` lists the page's top predictions (the lens record's last layer) for each sentence.
    func testPredictListsThePagesTopWords() throws {
        let (_, _, checkpoints, html, _) = Self.page
        let page = try Self.embedded(html)
        let chosen = [page.prompts[0], page.prompts[3]]
        let r = try runDroplab(["predict", checkpoints[0]] + chosen.map(\.prompt) + ["--top", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4, r.stdout)
        for (i, p) in chosen.enumerated() {
            XCTAssertEqual(lines[2 * i], p.prompt)
            let fields = lines[2 * i + 1].split(separator: " ").map(String.init)
            XCTAssertEqual(fields.count, 6, lines[2 * i + 1])
            for (k, t) in p.views[0].top.prefix(3).enumerated() {
                XCTAssertEqual(fields[2 * k], t.token)
                // predict prints "%.3f": half a unit of the third decimal; both sides come from the same
                // single-probe forward pass (same shapes, same values)
                XCTAssertEqual(Double(fields[2 * k + 1])!, t.prob, accuracy: 5e-4)
            }
        }
    }

    /// Checkpoints of different depths: a page with both, differences of the predictions only.
    func testCheckpointsOfDifferentDepths() throws {
        let dir = try temporaryDirectory(self)
        let trained = try Checkpoint.load(FactModel.trained.checkpoint)
        var config = trained.model.config
        config.numLayers = 1
        let shallow = BertModel(config: config)
        shallow.initialize(seed: 5)
        try Checkpoint.save(shallow, vocab: trained.vocab, to: dir + "/shallow.h5")
        let r = try runDroplab(["explore", FactModel.trained.checkpoint, dir + "/shallow.h5", "--prompt", "dog lived in [MASK] .",
                                "--target", "russia", "--subject", "dog", "--samples", "2", "--steps", "3", "--out", dir + "/page.html"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let html = try String(contentsOfFile: dir + "/page.html", encoding: .utf8)
        let views = try XCTUnwrap(Self.embedded(html).prompts.first).views
        XCTAssertEqual(views.map { $0.lens.prob.count }, [3, 2])
        XCTAssertEqual(views.map { $0.attention.count }, [2, 1])
        XCTAssertTrue(html.contains("differences are shown for the predictions only"))
        XCTAssertEqual(html.components(separatedBy: #"data-section="difference""#).count - 1, 1)
    }

    /// Headless Chromium: no console errors, a screenshot that is not blank, and every section
    /// in the DOM after the page's script ran.
    /// What a neuron promotes, recomputed independently: its value vector's dot products with
    /// every word embedding in Float64 (the listed tokens are the extremes, with their scores),
    /// and log P(target) from a copy of the model whose output matrix has the neuron's column
    /// zeroed: the edit's view W + (-W) is exactly 0 too, so both run the same float32 arithmetic
    /// on bit-identical weights; 1e-5 (a few ulps of a log-probability of at most 10) leaves room
    /// only for a BLAS kernel that blocks the two products differently.
    func testNeuronPromotions() throws {
        let (_, probes, checkpoints, html, cli) = Self.page
        XCTAssertEqual(cli.status, 0, cli.stderr)
        let page = try Self.embedded(html)
        let ck = try Checkpoint.load(checkpoints[0])
        let (model, tok) = (ck.model, try WordPieceTokenizer(vocab: ck.vocab))
        let c = model.config, C = c.hiddenSize, F = c.intermediateSize
        var checked = 0
        for (i, prompt) in page.prompts.enumerated() {
            let v = prompt.views[0]
            XCTAssertEqual(v.promotions.count, min(5, v.neurons.neurons.count), "prompt \(i)")
            XCTAssertEqual(v.promotions.map(\.attribution), v.neurons.attribution.sorted(by: >).prefix(5).map { $0 }, "largest attribution first")
            guard let n = v.promotions.first else { continue }
            let w = model.params[BertModule.ffnOut(n.layer).weight].values, e = model.params["bert.embeddings.word_embeddings.weight"].values
            let scores = (0..<c.vocabSize).map { t in (0..<C).reduce(0.0) { $0 + Double(e[t * C + $1]) * Double(w[$1 * F + n.unit]) } }
            // float32 products summed in Float64 in both: equal to the last bits of the order of the sum
            XCTAssertEqual(n.up[0].score, scores.max()!, accuracy: 1e-12 * scores.map(abs).max()!)
            XCTAssertEqual(n.down[0].score, scores.min()!, accuracy: 1e-12 * scores.map(abs).max()!)
            XCTAssertEqual(n.up.count, 10); XCTAssertEqual(n.up.map(\.score), n.up.map(\.score).sorted(by: >))
            XCTAssertEqual(tok.id(of: n.up[0].token).map { scores[Int($0)] }, n.up[0].score)
            // silenced: a copy with the column zeroed
            let copy = BertModel(config: c)
            copy.params.copyValues(from: model.params)
            let name = BertModule.ffnOut(n.layer).weight
            for j in 0..<C { copy.params[name].data[j * F + n.unit] = 0 }
            var o = ProbeOptions(); o.probes = probes
            let set = try ProbeSet.load(o, tokenizer: tok, maxLength: c.maxPositions)
            let p = try XCTUnwrap(set.tokenized.first { set.probes[$0.index].prompt == prompt.prompt })
            let batch = ProbeBatch([p], padId: tok.padId)
            let before = Double(ProbeScoring.distributions(model, batch, nil, log: true).values[Int(p.targetId)])
            let after = Double(ProbeScoring.distributions(copy, batch, nil, log: true).values[Int(p.targetId)])
            XCTAssertEqual(n.silencedLogProbChange, after - before, accuracy: 1e-5, "prompt \(i)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0)
    }

    /// The summary over the page's prompts, against the embedded views: accuracy counted from
    /// the top predictions, the lens mean and range per layer, the trace peaks of the three prompts
    /// with a subject.
    func testSetSummary() throws {
        let (_, _, _, html, cli) = Self.page
        XCTAssertEqual(cli.status, 0, cli.stderr)
        let page = try Self.embedded(html)
        let sums = try XCTUnwrap(page.summaries())
        XCTAssertEqual(sums.count, 2)
        for (c, sum) in sums.enumerated() {
            XCTAssertEqual(sum.prompts, 4)
            XCTAssertEqual(sum.correct, page.prompts.filter { $0.views[c].top[0].token == $0.target }.count)
            XCTAssertEqual(sum.tracePeaks.reduce(0, +), 3, "three prompts have a subject")
            var peaks = [Int](repeating: 0, count: page.checkpoints[c].layers)
            for p in page.prompts {
                guard let block = p.views[c].trace?.restored["block"], let last = p.subjectPositions.max() else { continue }
                let best = block.map { $0[last] }.max()!
                peaks[block.firstIndex { $0[last] == best }!] += 1
            }
            XCTAssertEqual(sum.tracePeaks, peaks)
            for l in sum.lens.indices {
                let xs = page.prompts.map { $0.views[c].lens.prob[l] }
                XCTAssertEqual(sum.lens[l].mean, xs.reduce(0, +) / 4, accuracy: 1e-15)
                XCTAssertEqual(sum.lens[l].low, xs.min()); XCTAssertEqual(sum.lens[l].high, xs.max())
            }
        }
        XCTAssertGreaterThan(sums[0].correct, sums[1].correct, "the fact model knows more than the untrained one")
        XCTAssertTrue(html.contains(#"data-section="summary""#))
    }

    /// The groups of prompts by knowledge neurons, against the embedded records: each checkpoint's
    /// groups split the prompts; their relations, objects, neuron counts per layer and most frequent
    /// neurons are those of their prompts' records; distinct and shared count every prompt's neurons.
    func testNeuronGroupsAgreeWithTheRecords() throws {
        let (_, _, _, html, cli) = Self.page
        XCTAssertEqual(cli.status, 0, cli.stderr)
        let page = try Self.embedded(html)
        let all = try XCTUnwrap(page.neuronGroups)
        XCTAssertEqual(all.count, 2)
        for (c, g) in all.enumerated() {
            let records = page.prompts.map { $0.views[c].neurons }
            XCTAssertEqual(g.groups.flatMap(\.prompts).sorted(), Array(records.indices), "the groups split the prompts")
            for x in g.groups {
                let members = x.prompts.map { records[$0] }
                XCTAssertEqual(x.relations, Dictionary(members.map { ($0.relation, 1) }, uniquingKeysWith: +))
                XCTAssertEqual(x.objects, Dictionary(members.map { ($0.target, 1) }, uniquingKeysWith: +))
                let distinct = Set(members.flatMap(\.neurons))
                XCTAssertEqual(x.layers, (0..<page.checkpoints[c].layers).map { l in distinct.filter { $0.layer == l }.count })
                XCTAssertEqual(x.uses, x.neurons.map { n in members.filter { $0.neurons.contains(n) }.count })
                XCTAssertTrue(x.uses == x.uses.sorted(by: >), "most frequent first")
                // no neuron left out is in more of the group's prompts than the last one listed
                if let least = x.uses.last, x.neurons.count == page.options.kn.topNeurons {
                    for n in distinct.subtracting(x.neurons) { XCTAssertLessThanOrEqual(members.filter { $0.neurons.contains(n) }.count, least) }
                } else {
                    XCTAssertEqual(Set(x.neurons), distinct, "fewer than --top-neurons: all of them")
                }
            }
            let uses = Dictionary(records.flatMap { Set($0.neurons).map { ($0, 1) } }, uniquingKeysWith: +)
            XCTAssertEqual(g.distinct, uses.count)
            XCTAssertEqual(g.shared, uses.values.filter { $0 >= 2 }.count)
        }
        XCTAssertTrue(html.contains(#"data-section="groups""#))
    }

    /// Prompts of two relations whose neurons are two disjoint sets (with one neuron of a prompt's
    /// own) fall into two groups, each labelled with its relation and objects and led by its shared neurons.
    func testNeuronGroupsSeparateTwoRelations() {
        func record(_ relation: String, _ target: String, _ units: [Int], layer: Int) -> KNProbeRecord {
            KNProbeRecord(prompt: "", target: target, prediction: target, relation: relation, prob: 1,
                          neurons: units.map { Neuron(layer: layer, unit: $0) }, attribution: units.map { _ in 1 }, cluster: nil)
        }
        let records = [record("P19", "paris", [1, 2, 3, 10], layer: 0), record("P36", "oslo", [50, 51, 60], layer: 1),
                       record("P19", "rome", [1, 2, 3, 11], layer: 0), record("P36", "oslo", [50, 51, 61], layer: 1),
                       record("P19", "paris", [1, 2, 3, 12], layer: 0)]
        var o = KNOptions(); o.topNeurons = 3
        let g = NeuronGroups.of(records, layers: 2, options: o, seed: 1)
        XCTAssertEqual(g.groups.map(\.prompts), [[0, 2, 4], [1, 3]])
        XCTAssertEqual(g.groups[0].relations, ["P19": 3]); XCTAssertEqual(g.groups[0].objects, ["paris": 2, "rome": 1])
        XCTAssertEqual(g.groups[0].neurons, [1, 2, 3].map { Neuron(layer: 0, unit: $0) }); XCTAssertEqual(g.groups[0].uses, [3, 3, 3])
        XCTAssertEqual(g.groups[0].layers, [6, 0])
        XCTAssertEqual(g.groups[1].relations, ["P36": 2]); XCTAssertEqual(Array(g.groups[1].neurons.prefix(2)), [Neuron(layer: 1, unit: 50), Neuron(layer: 1, unit: 51)])
        XCTAssertEqual(g.groups[1].layers, [0, 4])
        XCTAssertEqual(g.distinct, 10); XCTAssertEqual(g.shared, 5)
        XCTAssertNotNil(g.silhouette)
    }

    /// The audit finds an edit without being told where: a rank-one update of one FFN output
    /// matrix and a changed bias, nothing else. In float32, B = fl(A + u vᵀ) differs from A + u vᵀ
    /// by at most one rounding per entry (unit roundoff 2^-24 of |B|), a matrix E with
    /// ‖E‖ <= 2^-24 ‖B‖_F; σ₁ and ‖B − A‖ are then within ‖E‖ of ‖u‖‖v‖, and the stable rank within
    /// about 4‖E‖/σ₁ of 1: the bounds below are those, doubled.
    func testWeightAuditFindsARankOneEdit() throws {
        let a = try Checkpoint.load(FactModel.trained.checkpoint).model
        let b = BertModel(config: a.config)
        b.params.copyValues(from: a.params)
        let w = b.params[BertModule.ffnOut(1).weight], (rows, cols) = (w.shape[0], w.shape[1])
        let u = (0..<rows).map { Float(sin(Double($0) + 1)) }, v = (0..<cols).map { Float(cos(0.3 * Double($0))) }
        for r in 0..<rows { for c in 0..<cols { w.data[r * cols + c] += u[r] * v[c] } }
        b.params[BertModule.ffnIn(0).bias].data[3] += 0.5
        let audit = try XCTUnwrap(WeightAudit.compare(a.params, b.params))
        XCTAssertEqual(audit.tensors, a.params.entries.count)
        XCTAssertEqual(Set(audit.changed.map(\.name)), [BertModule.ffnOut(1).weight, BertModule.ffnIn(0).bias])
        let m = try XCTUnwrap(audit.changed.first { $0.name == BertModule.ffnOut(1).weight })
        let sigma = Double(u.map { $0 * $0 }.reduce(0, +)).squareRoot() * Double(v.map { $0 * $0 }.reduce(0, +)).squareRoot()
        let normB = Double(w.values.map { $0 * $0 }.reduce(0, +)).squareRoot()
        let e = 2 * 0x1p-24 * normB
        XCTAssertEqual(m.sigma1!, sigma, accuracy: 2 * e)
        XCTAssertEqual(m.norm, sigma, accuracy: 2 * e)
        XCTAssertEqual(m.stableRank!, 1, accuracy: 2 * 4 * e / sigma)
        let bias = try XCTUnwrap(audit.changed.first { $0.name == BertModule.ffnIn(0).bias })
        XCTAssertEqual(bias.norm, 0.5, accuracy: 1e-6)   // one float32 addition of 0.5 to a bias below 1 in size: within 2^-24 x 1.5
        XCTAssertNil(bias.sigma1)
        XCTAssertEqual(WeightAudit.compare(a.params, a.params)?.changed.count, 0)
        // a difference spread over many directions has a large stable rank: the untrained model of the page
        let page = try Self.embedded(Self.page.html)
        let spread = try XCTUnwrap(page.audit?.changed.first { $0.name == BertModule.ffnOut(1).weight })
        // (a 64 x 128 Gaussian matrix has stable rank about 8192 / (8 + 11.3)^2 = 22; asserted far from 1, not near 22)
        XCTAssertGreaterThan(spread.stableRank!, 2, "two independent weight matrices differ in many directions")
        // the prompts whose top prediction differs between A and B, listed under the audit
        let flipped = page.prompts.filter { $0.views[0].top.first?.token != $0.views[1].top.first?.token }
        XCTAssertTrue(Self.page.html.contains("The top prediction at [MASK] changed in \(flipped.count) of the \(page.prompts.count) prompts"))
        XCTAssertGreaterThan(flipped.count, 0, "the untrained model does not answer as the fact model does")
    }

    func testPageOpensInChromium() throws {
        let (dir, _, _, html, cli) = Self.page
        let chromium = try Chromium(directory: dir)
        XCTAssertEqual(cli.status, 0, cli.stderr)
        XCTAssertTrue(loadsNothingFromOutside(html), "the page must load nothing")
        let page = dir + "/page.html"
        let shot = dir + "/page.png"
        let s = try chromium.run(["--screenshot=\(shot)", "--window-size=1400,1800", "--hide-scrollbars"], page: page)
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertEqual(Chromium.consoleMessages(s), [], "console messages")
        let png = try PNGImage(contentsOf: shot)
        let (distinct, ink) = png.colourStatistics
        print("explore screenshot: \(png.width)x\(png.height), \(distinct) colours, \(String(format: "%.1f", 100 * ink))% not background")
        XCTAssertEqual(png.width, 1400)
        // not rounding bounds: a blank or error page renders a few colours and almost no ink, the page's
        // text, heatmaps and plots hundreds of (antialiased) colours over a good share of 1400 x 1800
        XCTAssertGreaterThan(distinct, 100, "the screenshot is (nearly) blank")
        XCTAssertGreaterThan(ink, 0.05, "the screenshot is (nearly) blank")

        let d = try chromium.run(["--dump-dom"], page: page)
        XCTAssertEqual(d.status, 0, d.stderr)
        let dom = d.stdout
        XCTAssertTrue(dom.contains(#"data-ready="4""#), "the page's script did not run to its end")
        XCTAssertTrue(dom.contains(#"<pre id="page-errors" hidden=""></pre>"#), "errors reported in the page")
        for section in ["summary", "groups", "audit", "prompt", "predictions", "lens", "trace", "neurons", "promotes", "attention", "difference"] {
            XCTAssertTrue(dom.contains("data-section=\"\(section)\""), "no \(section) section")
        }
        XCTAssertEqual(dom.components(separatedBy: #"data-section="prompt""#).count - 1, 4)
        XCTAssertTrue(dom.contains("No subject for this prompt"))
        XCTAssertTrue(dom.contains("blob:"), "the JSON download link was not made")
    }
}
