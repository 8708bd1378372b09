// The `droplab explore` page: one self-contained HTML file (inline SVG, CSS and a little
// JavaScript; nothing from the network) drawn from an ExplorePage, which it embeds as JSON
// (<script type="application/json" id="explore-data">). Per prompt, one row per view, one
// panel per checkpoint side by side on shared colour scales and, for two checkpoints, a
// difference panel (B - A). Colours are colour-blind safe (viridis; PuOr for differences);
// every cell and bar has a tooltip with its exact numbers. Units of two models (heads,
// FFN neurons) do not correspond, so their differences are per layer.

import Evaluators
import Foundation

extension ExplorePage {
    static let names = ["A", "B"]

    /// The page's HTML.
    public func html() throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        // "<" as \u003c: no prompt text can close the script element
        let json = String(decoding: try enc.encode(self), as: UTF8.self).replacingOccurrences(of: "<", with: "\\u003c")
        var h = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>droplab explore: \(esc(prompts.map(\.prompt).first ?? ""))\(prompts.count > 1 ? " and \(prompts.count - 1) more" : "")</title>
        <style>\(Self.css)</style>
        </head>
        <body>
        <header>
        <h1>droplab explore</h1>
        \(checkpointTable())
        <p class="note">Hover any cell or bar for its exact numbers. Colours: viridis (dark = low, yellow = high) on one scale
        shared by the checkpoints of a view; differences (B &minus; A) purple (negative) to orange (positive). Trace: \(options.trace.samples)
        noise samples of \(fmt(options.trace.noise)) word-embedding standard deviations; neurons: integrated gradients over \(esc(options.kn.site))
        (\(options.kn.alphas.isEmpty ? "\(options.kn.steps) steps" : "alphas \(options.kn.alphas.map(fmt).joined(separator: " "))"), above
        \(fmt(options.kn.threshold)) of the largest attribution. The numbers are those of <code>droplab eval lens</code>,
        <code>trace</code> and <code>kn</code> for each probe; this page embeds them as JSON
        (<a id="download-json" download="explore.json" href="#explore-data">download</a>).</p>
        <p><label>Filter prompts: <input id="filter" type="search" placeholder="text in the prompt"></label></p>
        <nav><ol>\(prompts.enumerated().map { "<li><a href=\"#prompt-\($0 + 1)\">\(esc($1.prompt)) &rarr; \(esc($1.target))</a></li>" }.joined())</ol></nav>
        <pre id="page-errors" hidden></pre>
        </header>
        <main>

        """
        h += summaryTable()
        h += groupsSection()
        h += auditSection()
        for (i, p) in prompts.enumerated() { h += section(i + 1, p) }
        h += """
        </main>
        <script type="application/json" id="explore-data">\(json)</script>
        <script>\(Self.errorHook)</script>
        <script>\(Self.script)</script>
        </body>
        </html>

        """
        return h
    }

    var comparable: Bool { checkpoints.count == 2 && checkpoints[0].layers == checkpoints[1].layers && checkpoints[0].heads == checkpoints[1].heads }

    func checkpointTable() -> String {
        var t = "<table class=\"checkpoints\"><caption>Checkpoints</caption><tr><th></th><th>file</th><th>layers</th><th>hidden</th><th>heads</th><th>FFN</th><th>dropout (hidden / attention)</th></tr>"
        for (c, name) in zip(checkpoints, Self.names) {
            t += "<tr><th>\(name)</th><td><code>\(esc(c.path))</code></td><td>\(c.layers)</td><td>\(c.hidden)</td><td>\(c.heads)</td><td>\(c.ffn)</td>"
                + "<td>\(fmt(c.hiddenDropout)) / \(fmt(c.attentionDropout))</td></tr>"
        }
        t += "</table>"
        if checkpoints.count == 2 && !comparable {
            t += "<p class=\"note\">The checkpoints differ in layers or heads: differences are shown for the predictions only.</p>"
        }
        return t
    }

    /// Over the page's prompts, per checkpoint: accuracy at [MASK] (the target ranked first), the
    /// logit lens's P(target) per layer (mean and range over the prompts), and where the trace
    /// peaks (per traced prompt, the layer whose block state restored at the last subject token
    /// gives P(target) back most). Nil for a single prompt.
    public struct SetSummary: Equatable, Sendable {
        public struct Band: Equatable, Sendable { public var mean: Double, low: Double, high: Double }
        public var prompts: Int, correct: Int
        public var lens: [Band]                   // per layer
        public var tracePeaks: [Int]              // prompts whose trace peaks at each layer
    }

    public func summaries() -> [SetSummary]? {
        guard prompts.count > 1 else { return nil }
        return checkpoints.indices.map { c in
            let views = prompts.map { $0.views[c] }
            let layers = views[0].lens.prob.count
            let lens = (0..<layers).map { l -> SetSummary.Band in
                let xs = views.map { $0.lens.prob[l] }
                return SetSummary.Band(mean: xs.reduce(0, +) / Double(xs.count), low: xs.min()!, high: xs.max()!)
            }
            var peaks = [Int](repeating: 0, count: checkpoints[c].layers)
            for (p, v) in zip(prompts, views) {
                guard let t = v.trace, let last = p.subjectPositions.max(), let block = t.restored["block"] else { continue }
                let curve = block.map { $0[last] }
                if let peak = curve.indices.max(by: { curve[$0] < curve[$1] }) { peaks[peak] += 1 }
            }
            return SetSummary(prompts: views.count, correct: zip(prompts, views).filter { $1.top.first?.token == $0.target }.count,
                              lens: lens, tracePeaks: peaks)
        }
    }

    func summaryTable() -> String {
        guard let sums = summaries() else { return "" }
        var s = "<section class=\"summary\" data-section=\"summary\"><h2>The prompts together</h2>"
        s += "<p class=\"note\">Over the \(prompts.count) prompts of this page: accuracy at [MASK] (the target ranked first), the logit "
            + "lens's P(target) per layer (mean, and the range over the prompts; layer 0 = the embeddings), and where the causal trace "
            + "peaks (per prompt with a subject, the layer whose block state restored at the last subject token gives P(target) back most).</p>"
        s += "<table><tr><th></th><th>accuracy</th>" + sums[0].lens.indices.map { "<th>lens, layer \($0)</th>" }.joined()
            + "<th>trace peaks by layer</th></tr>"
        for (name, x) in zip(Self.names, sums) {
            s += "<tr><th>\(name)</th><td>\(x.correct) of \(x.prompts)</td>"
                + x.lens.map { "<td>\(num($0.mean)) [\(num($0.low)), \(num($0.high))]</td>" }.joined()
                + "<td>" + x.tracePeaks.enumerated().map { "\($0): \($1)" }.joined(separator: ", ") + "</td></tr>"
        }
        return s + "</table></section>\n"
    }

    /// The prompts grouped by their knowledge neurons, for each checkpoint (NeuronGroups).
    func groupsSection() -> String {
        guard let all = neuronGroups else { return "" }
        var s = "<section class=\"summary\" data-section=\"groups\"><h2>Knowledge neurons by what they serve</h2>"
        s += "<p class=\"note\">The \(prompts.count) prompts grouped by their knowledge neurons (k-means on the neuron sets, k chosen by the "
            + "silhouette, as <code>eval kn</code> groups a concept's probes). Per group: its prompts, their relations and objects (with counts), "
            + "its most frequent neurons (layer:unit &times; the prompts that have it) and its knowledge neurons per layer.</p>"
        func counts(_ d: [String: Int]) -> String { d.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\(esc($0.key)) \($0.value)" }.joined(separator: ", ") }
        for (name, g) in zip(Self.names, all) {
            s += "<h3>\(name)</h3><p>\(g.distinct) knowledge neurons over the prompts, \(g.shared) of them in two or more; \(g.groups.count) group"
                + (g.groups.count == 1 ? "" : "s") + (g.silhouette.map { " (silhouette \(num($0)))" } ?? " (the neuron sets could not be split)") + ".</p>"
            s += "<table><tr><th>group</th><th>prompts</th><th>relations</th><th>objects</th><th>most frequent neurons</th><th>neurons per layer</th></tr>"
            for (i, x) in g.groups.enumerated() {
                s += "<tr><td>\(i + 1)</td><td>" + x.prompts.map { "<a href=\"#prompt-\($0 + 1)\">\($0 + 1)</a>" }.joined(separator: " ")
                    + "</td><td>\(counts(x.relations))</td><td>\(counts(x.objects))</td><td>"
                    + zip(x.neurons, x.uses).map { "\($0.layer):\($0.unit) &times;\($1)" }.joined(separator: ", ") + "</td><td>"
                    + x.layers.enumerated().map { "\($0): \($1)" }.joined(separator: ", ") + "</td></tr>"
            }
            s += "</table>"
        }
        return s + "</section>\n"
    }

    /// The tensors listed in the audit view; the rest are counted.
    static let auditRows = 30

    /// Two checkpoints of one architecture: which weights differ and how (WeightAudit), found
    /// without being told where an edit was made.
    func auditSection() -> String {
        guard let a = audit else { return "" }
        var s = "<section class=\"summary\" data-section=\"audit\"><h2>What changed in the weights (B &minus; A)</h2>"
        guard !a.changed.isEmpty else { return s + "<p>No weight differs: all \(a.tensors) parameter tensors are identical.</p></section>\n" }
        s += "<p class=\"note\">\(a.changed.count) of the \(a.tensors) parameter tensors differ (the largest relative change first). "
            + "&sigma;<sub>1</sub>: the largest singular value of a matrix's difference (power iteration); stable rank = "
            + "&Vert;B &minus; A&Vert;&sup2; / &sigma;<sub>1</sub>&sup2;: 1 for a rank-one edit (ROME), up to k for MEMIT's k facts, "
            + "large for a finetune or a mask spread over the matrix.</p>"
        s += "<table><tr><th>tensor</th><th>shape</th><th>&Vert;B &minus; A&Vert;</th><th>relative to &Vert;A&Vert;</th><th>&sigma;<sub>1</sub></th><th>stable rank</th></tr>"
        for c in a.changed.prefix(Self.auditRows) {
            s += "<tr><td><code>\(esc(c.name))</code></td><td>\(c.shape.map(String.init).joined(separator: " &times; "))</td><td>\(num(c.norm))</td>"
                + "<td>\(c.relative.isFinite ? num(c.relative) : "(A is 0)")</td><td>\(c.sigma1.map(num) ?? "–")</td><td>\(c.stableRank.map { String(format: "%.2f", $0) } ?? "–")</td></tr>"
        }
        s += "</table>"
        if a.changed.count > Self.auditRows { s += "<p class=\"note\">and \(a.changed.count - Self.auditRows) more tensors with smaller changes (all in the JSON).</p>" }
        // and what that did to this page's prompts
        let flipped = prompts.filter { $0.views.count == 2 && $0.views[0].top.first?.token != $0.views[1].top.first?.token }
        s += "<p data-audit=\"predictions\">The top prediction at [MASK] changed in \(flipped.count) of the \(prompts.count) prompts"
            + (flipped.isEmpty ? "." : ": " + flipped.map { p in
                "<q>\(esc(p.prompt))</q> \(esc(p.views[0].top.first?.token ?? "?")) &rarr; \(esc(p.views[1].top.first?.token ?? "?"))"
            }.joined(separator: "; ") + ".") + "</p>"
        let moved = self.moved.prefix(Self.movedRows)
        guard !moved.isEmpty else { return s + "</section>\n" }
        s += "<p class=\"note\">The prompts whose target B moved most from A: |log P<sub>B</sub>(target) &minus; log P<sub>A</sub>(target)| "
            + "at [MASK], largest first (an edit's own prompts come first; the rest is its spill-over).</p>"
        s += "<table data-audit=\"moved\"><tr><th>rank</th><th>prompt</th><th>target</th><th>A: P(target)</th><th>B: P(target)</th>"
            + "<th>log P change</th><th>top: A &rarr; B</th></tr>"
        for (k, m) in moved.enumerated() {
            let p = prompts[m.prompt]
            s += "<tr><td>\(k + 1)</td><td><a href=\"#prompt-\(m.prompt + 1)\">\(esc(p.prompt))</a></td><td>\(esc(p.target))</td>"
                + "<td>\(num(p.views[0].lens.prob.last ?? 0))</td><td>\(num(p.views[1].lens.prob.last ?? 0))</td><td>\(num(m.change))</td>"
                + "<td>\(esc(p.views[0].top.first?.token ?? "?")) &rarr; \(esc(p.views[1].top.first?.token ?? "?"))</td></tr>"
        }
        return s + "</table></section>\n"
    }

    /// The prompts listed by how far B moved their target.
    static let movedRows = 20

    /// One prompt: the tokens, then a row per view.
    func section(_ n: Int, _ p: ExplorePrompt) -> String {
        let tokens = p.tokens.enumerated().map { t, tok in
            let cls = t == p.maskPosition ? "tok mask" : p.subjectPositions.contains(t) ? "tok subject" : "tok"
            return "<span class=\"\(cls)\" title=\"position \(t)\">\(esc(tok))</span>"
        }.joined(separator: " ")
        var s = "<section class=\"prompt\" id=\"prompt-\(n)\" data-section=\"prompt\" data-prompt=\"\(esc(p.prompt))\">\n"
        s += "<h2>\(n). \(esc(p.prompt)) <span class=\"target\">&rarr; \(esc(p.target))</span></h2>\n"
        s += "<p class=\"tokens\">\(tokens) <span class=\"legend\"><span class=\"tok subject\">subject</span> <span class=\"tok mask\">[MASK]</span></span></p>\n"
        s += "<div class=\"views\">" + predictions(p) + lens(p) + trace(p) + neurons(p) + promotions(p) + attention(p) + "</div>"
        return s + "</section>\n"
    }

    /// A view: its heading and introduction (HTML), a panel per checkpoint and the difference
    /// panel when there is one.
    func view(_ id: String, _ title: String, _ intro: String, panels: [String], difference: String?) -> String {
        var s = "<div class=\"view\" data-section=\"\(id)\"><h3>\(title)</h3>\(intro)<div class=\"panels\">"
        for (i, panel) in panels.enumerated() {
            s += "<figure><figcaption>\(Self.names[i]): <code>\(esc(checkpoints[i].path))</code></figcaption>\(panel)</figure>"
        }
        if let difference { s += "<figure data-section=\"difference\"><figcaption>B &minus; A</figcaption>\(difference)</figure>" }
        return s + "</div></div>\n"
    }

    func predictions(_ p: ExplorePrompt) -> String {
        let hi = p.views.flatMap { $0.top.map(\.prob) }.max() ?? 1
        let panels = p.views.map { v in
            Bars.svg(labels: v.top.map(\.token), values: v.top.map(\.prob), range: 0...hi, xLabel: "P(token at [MASK])",
                     tooltips: v.top.enumerated().map { "\($0 + 1). \($1.token): P = \(num($1.prob))" },
                     highlight: v.top.map { $0.token == p.target })
        }
        var diff: String? = nil
        if p.views.count == 2 {
            // the tokens both list (a token missing from one top-k has no probability to subtract), by their larger probability
            let (a, b) = (p.views[0].top, p.views[1].top)
            var tokens: [String] = []
            for t in (a + b).sorted(by: { $0.prob > $1.prob })
            where !tokens.contains(t.token) && a.contains(where: { $0.token == t.token }) && b.contains(where: { $0.token == t.token }) {
                tokens.append(t.token)
            }
            let pa = tokens.map { t in a.first { $0.token == t }!.prob }, pb = tokens.map { t in b.first { $0.token == t }!.prob }
            let d = zip(pa, pb).map { $1 - $0 }
            let m = max(d.map(abs).max() ?? 0, 1e-12)     // a scale even when nothing differs
            diff = tokens.isEmpty ? note("The two top-\(options.top) lists share no token.")
                : Bars.svg(labels: tokens, values: d, range: -m...m, xLabel: "P(B) \u{2212} P(A), tokens in both top \(options.top)",
                           tooltips: tokens.indices.map { "\(tokens[$0]): A \(num(pa[$0])), B \(num(pb[$0]))" },
                           highlight: tokens.map { $0 == p.target })
        }
        return view("predictions", "Top \(options.top) predictions at [MASK]", note("The target is outlined."), panels: panels, difference: diff)
    }

    func lens(_ p: ExplorePrompt) -> String {
        let L = p.views.map { $0.lens.prob.count }.max()! - 1        // layers of the deeper checkpoint
        var table = "<table class=\"lens\"><caption>Target &lsquo;\(esc(p.target))&rsquo; at [MASK] by layer</caption><tr><th scope=\"col\">layer</th>"
        for name in Self.names.prefix(p.views.count) { table += "<th scope=\"col\">\(name): P(target)</th><th scope=\"col\">\(name): rank (1 = top)</th><th scope=\"col\">\(name): top token</th>" }
        if comparable { table += "<th scope=\"col\">B &minus; A: P(target)</th>" }
        table += "</tr>"
        for l in 0...L {
            table += "<tr><th scope=\"row\">\(lensLayer(l))</th>"
            for v in p.views {
                table += l < v.lens.prob.count ? "<td>\(num(v.lens.prob[l]))</td><td>\(v.lens.rank[l] + 1)</td><td>\(esc(v.lens.top1[l]))</td>"
                    : "<td></td><td></td><td></td>"
            }
            if comparable { table += "<td>\(num(p.views[1].lens.prob[l] - p.views[0].lens.prob[l]))</td>" }
            table += "</tr>"
        }
        table += "</table>"
        let grids = p.views.map(\.lensGrid)
        let probs = grids.flatMap { $0.prob.flatMap { $0 } }
        let columns = p.tokens
        var style = tokenStyle(yLabel: "hidden state")
        style.range = 0...(probs.max() ?? 1)
        let panels = grids.map { g -> String in
            var st = style
            st.cellText = g.top1.map { $0.map { short($0) } }
            st.tooltips = g.top1.indices.map { l in g.top1[l].indices.map { "top token \(g.top1[l][$0]); target rank \(g.rank[l][$0] + 1)" } }
            return Heatmap.svg(title: "P(\(p.target)) through the MLM head; cells: top token", rowLabels: g.prob.indices.map(lensLayer), columnLabels: columns,
                               values: g.prob.map { $0.map(Optional.some) }, style: st)
        }
        var diff: String? = nil
        if comparable {
            var st = tokenStyle(yLabel: "hidden state"); st.scale = .diverging
            diff = Heatmap.svg(title: "P(\(p.target)) B \u{2212} A", rowLabels: (0...L).map(lensLayer), columnLabels: columns,
                               values: zip(grids[0].prob, grids[1].prob).map { zip($0, $1).map { $1 - $0 } }, style: st)
        }
        return view("lens", "Logit lens", table, panels: panels, difference: diff)
    }

    func lensLayer(_ l: Int) -> String { l == 0 ? "embeddings" : "after layer \(l - 1)" }

    func trace(_ p: ExplorePrompt) -> String {
        let traces = p.views.compactMap(\.trace)
        let kinds = options.trace.kinds
        guard traces.count == p.views.count, !traces.isEmpty else {
            return view("trace", "Causal trace", note("No subject for this prompt: nothing to corrupt, so no trace (give --subject)."), panels: [], difference: nil)
        }
        // indirect effect of restoring each state: P(restored) - P(corrupted)
        func effect(_ t: TraceProbeRecord, _ kind: String) -> [[Double?]] { t.restored[kind]!.map { $0.map { $0 - t.corruptProb } } }
        let all = traces.flatMap { t in kinds.flatMap { effect(t, $0).flatMap { $0 }.compactMap { $0 } } }
        var s = ""
        func rows(_ t: TraceProbeRecord) -> [String] { t.restored[kinds[0]]!.indices.map { "layer \($0)" } }
        for kind in kinds {
            var style = tokenStyle(yLabel: "restored state")
            style.range = min(0, all.min() ?? 0)...max(all.max() ?? 1, 1e-12)
            let panels = traces.map { t -> String in
                var st = style
                st.tooltips = t.restored[kind]!.map { $0.map { "P(\(p.target)) restored \(num($0)), corrupted \(num(t.corruptProb)), clean \(num(t.cleanProb))" } }
                return Heatmap.svg(title: "\(kind): P(\(p.target)) restored \u{2212} corrupted", rowLabels: rows(t), columnLabels: p.tokens,
                                   values: effect(t, kind), style: st)
            }
            var diff: String? = nil
            if comparable {
                var st = tokenStyle(yLabel: "restored state"); st.scale = .diverging
                diff = Heatmap.svg(title: "\(kind): indirect effect B \u{2212} A", rowLabels: rows(traces[0]), columnLabels: p.tokens,
                                   values: zip(effect(traces[0], kind), effect(traces[1], kind)).map { zip($0, $1).map { $1! - $0! } }, style: st)
            }
            s += view("trace", "Causal trace: \(kind)", kind == kinds[0] ? note(traceNote(traces)) : "", panels: panels, difference: diff)
        }
        return s
    }

    func traceNote(_ traces: [TraceProbeRecord]) -> String {
        "The subject's word embeddings get noise; each cell restores one state (layer, position) to its clean value. "
            + zip(traces, Self.names).map { t, n in "\(n): P(target) clean \(num(t.cleanProb)), corrupted \(num(t.corruptProb))." }.joined(separator: " ")
    }

    func neurons(_ p: ExplorePrompt) -> String {
        let shown = 8
        let hi = p.views.flatMap(\.neurons.attribution).max() ?? 1
        let panels = p.views.map { v -> String in
            let ranked = v.neurons.neurons.indices.sorted { (v.neurons.neurons[$0].layer, -v.neurons.attribution[$0]) < (v.neurons.neurons[$1].layer, -v.neurons.attribution[$1]) }
            var byLayer: [Int: Int] = [:]
            let kept = ranked.filter { i in byLayer[v.neurons.neurons[i].layer, default: 0] += 1; return byLayer[v.neurons.neurons[i].layer]! <= shown }
            guard !kept.isEmpty else { return "<p class=\"note\">No neuron above the threshold.</p>" }
            let more = v.neurons.neurons.count - kept.count
            return Bars.svg(labels: kept.map { "layer \(v.neurons.neurons[$0].layer) #\(v.neurons.neurons[$0].unit)" },
                            values: kept.map { v.neurons.attribution[$0] }, range: 0...max(hi, 1e-12), xLabel: "attribution to P(target)",
                            tooltips: kept.map { "layer \(v.neurons.neurons[$0].layer), unit \(v.neurons.neurons[$0].unit): attribution \(num(v.neurons.attribution[$0]))" },
                            highlight: nil)
                + (more > 0 ? "<p class=\"note\">\(more) more (at most \(shown) a layer shown; all in the JSON).</p>" : "")
        }
        var diff: String? = nil
        if comparable {
            let L = checkpoints[0].layers
            let counts = p.views.map { v in (0..<L).map { l in v.neurons.neurons.filter { $0.layer == l }.count } }
            let d = (0..<L).map { Double(counts[1][$0] - counts[0][$0]) }
            let m = max(d.map(abs).max() ?? 1, 1)
            diff = Bars.svg(labels: (0..<L).map { "layer \($0)" }, values: d, range: -m...m, xLabel: "neurons B \u{2212} neurons A",
                            tooltips: (0..<L).map { "layer \($0): A \(counts[0][$0]) neurons, B \(counts[1][$0])" }, highlight: nil)
        }
        let note = "Knowledge neurons (Dai et al. 2022) by layer, largest attribution first. "
            + zip(p.views, Self.names).map { v, n in "\(n): \(v.neurons.neurons.count) neurons, prediction &lsquo;\(esc(v.neurons.prediction))&rsquo;." }.joined(separator: " ")
        return view("neurons", "Knowledge neurons", self.note(note), panels: panels, difference: diff)
    }

    /// What the strongest knowledge neurons write: per neuron, its attribution, log P(target)
    /// when it is silenced, and the tokens its value vector points at most and least.
    func promotions(_ p: ExplorePrompt) -> String {
        guard p.views.contains(where: { !$0.promotions.isEmpty }) else { return "" }
        let panels = p.views.map { v -> String in
            guard !v.promotions.isEmpty else { return "<p class=\"note\">No neuron above the threshold.</p>" }
            func tokens(_ xs: [NeuronPromotion.Score]) -> String {
                xs.map { "<span title=\"\(esc($0.token)): \(num($0.score))\">\(esc($0.token))</span>" }.joined(separator: " ")
            }
            return "<table><tr><th>neuron</th><th>attribution</th><th>&Delta; log P(\(esc(p.target))) silenced</th><th>pushes up</th><th>pushes down</th></tr>"
                + v.promotions.map { n in
                    "<tr><td>layer \(n.layer) #\(n.unit)</td><td>\(num(n.attribution))</td><td>\(num(n.silencedLogProbChange))</td>"
                        + "<td>\(tokens(n.up))</td><td>\(tokens(n.down))</td></tr>"
                }.joined() + "</table>"
        }
        let note = "<p class=\"note\">The knowledge neurons of largest attribution (Geva et al. 2022): the tokens each neuron's value vector "
            + "(its column of the FFN output matrix) points at most and least, read through the word embeddings (BERT's MLM head "
            + "transforms before them: a direction, not exact logit changes), and the change in log P(target) at [MASK] when the "
            + "neuron is silenced (negative: it supported the target).</p>"
        return view("promotes", "What the neurons promote", note, panels: panels, difference: nil)
    }

    func attention(_ p: ExplorePrompt) -> String {
        let hi = p.views.flatMap { $0.attention.flatMap { $0.flatMap { $0 } } }.max() ?? 1
        var style = tokenStyle(yLabel: "layer, head"); style.range = 0...hi
        let panels = p.views.map { v -> String in
            let rows = v.attention.indices.flatMap { l in v.attention[l].indices.map { "layer \(l) head \($0)" } }
            return Heatmap.svg(title: "Attention of [MASK] to each token", rowLabels: rows, columnLabels: p.tokens,
                               values: v.attention.flatMap { $0.map { $0.map(Optional.some) } }, style: style)
        }
        var diff: String? = nil
        if comparable {
            var st = tokenStyle(yLabel: "layer (mean over heads)"); st.scale = .diverging
            let means = p.views.map { v in v.attention.map { heads in p.tokens.indices.map { t in heads.map { $0[t] }.reduce(0, +) / Double(heads.count) } } }
            diff = Heatmap.svg(title: "Attention of [MASK], mean over heads, B \u{2212} A", rowLabels: means[0].indices.map { "layer \($0)" },
                               columnLabels: p.tokens, values: zip(means[0], means[1]).map { zip($0, $1).map { $1 - $0 } }, style: st)
        }
        return view("attention", "Attention from [MASK]", note("Each row: one head&rsquo;s weights over the tokens (they sum to 1)."), panels: panels, difference: diff)
    }

    func tokenStyle(yLabel: String) -> Heatmap.Style {
        var s = Heatmap.Style()
        s.cellWidth = 46; s.cellHeight = 22; s.left = 120; s.slantedColumnLabels = true
        s.xLabel = "token"; s.yLabel = yLabel
        return s
    }

    func note(_ html: String) -> String { "<p class=\"note\">\(html)</p>" }
    func short(_ s: String) -> String { s.count > 6 ? String(s.prefix(5)) + "\u{2026}" : s }
    func num(_ x: Double) -> String { String(format: "%.4g", x) }
    func fmt(_ x: Double) -> String { String(format: "%g", x) }
    func esc(_ s: String) -> String { Heatmap.escape(s) }

    static let css = """
    body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 1.5rem 3rem;color:#111;background:#fff;line-height:1.4}
    h1{font-size:1.5rem;margin:1rem 0 .5rem}h2{font-size:1.2rem;margin:2rem 0 .3rem;border-top:2px solid #333;padding-top:.6rem}
    h3{font-size:1rem;margin:1rem 0 .2rem}.target{color:#3b528b}.note{color:#444;font-size:.9rem;max-width:70rem}.view .note{max-width:44rem}
    table{border-collapse:collapse;font-size:.85rem;margin:.3rem 0}th,td{border:1px solid #ccc;padding:.15rem .45rem;text-align:left}
    caption{text-align:left;font-weight:600;padding:.2rem 0}td{font-variant-numeric:tabular-nums}
    .views{display:flex;flex-wrap:wrap;gap:.5rem 2.5rem;align-items:flex-start}.view{max-width:100%}
    .panels{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}figure{margin:0;max-width:100%}
    figcaption{font-size:.85rem;font-weight:600;margin-bottom:.2rem}svg{max-width:100%;height:auto}
    .tok{display:inline-block;border:1px solid #bbb;border-radius:3px;padding:0 .3rem;margin:1px;font-family:ui-monospace,monospace;font-size:.9rem}
    .tok.subject{background:#21918c;color:#fff;border-color:#21918c}.tok.mask{background:#fde725;border-color:#b8a800}
    .legend{margin-left:1rem;font-size:.8rem}nav ol{columns:2;font-size:.9rem}#page-errors{color:#b00;background:#fee;padding:.5rem}
    """

    /// Uncaught errors and console.error calls go into #page-errors (the test reads it back).
    static let errorHook = """
    (function(){var box=document.getElementById('page-errors');function report(m){box.hidden=false;box.textContent+=m+'\\n';}
    window.addEventListener('error',function(e){report('error: '+e.message);});
    var ce=console.error;console.error=function(){report('console.error: '+Array.prototype.join.call(arguments,' '));ce.apply(console,arguments);};})();
    """

    /// The filter box, the JSON download link and a mark that the script ran (data-ready).
    static let script = """
    (function(){var data=JSON.parse(document.getElementById('explore-data').textContent);
    var box=document.getElementById('filter'),sections=document.querySelectorAll('section.prompt');
    box.addEventListener('input',function(){var q=box.value.toLowerCase();
    sections.forEach(function(s){s.hidden=q!==''&&s.getAttribute('data-prompt').toLowerCase().indexOf(q)<0;});});
    var link=document.getElementById('download-json');
    link.href=URL.createObjectURL(new Blob([JSON.stringify(data,null,1)],{type:'application/json'}));
    document.body.setAttribute('data-ready',String(data.prompts.length));})();
    """
}

/// Horizontal bars with labels, on a shared range (a range below 0 draws bars both ways from
/// 0, purple below and orange above), a labelled value axis and a tooltip per bar.
enum Bars {
    static func svg(labels: [String], values: [Double], range: ClosedRange<Double>, xLabel: String, tooltips: [String], highlight: [Bool]?) -> String {
        let left = 130.0, barW = 260.0, rowH = 20.0, top = 10.0
        let width = left + barW + 80, bottom = top + rowH * Double(labels.count), height = bottom + 44
        let lo = range.lowerBound, span = range.upperBound > lo ? range.upperBound - lo : 1
        func x(_ v: Double) -> Double { left + (min(max(v, lo), range.upperBound) - lo) / span * barW }
        let zero = x(0)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        for (i, label) in labels.enumerated() {
            let y = top + rowH * Double(i), v = values[i]
            let x0 = min(zero, x(v)), w = max(abs(x(v) - zero), 0.5)
            let fill = lo < 0 ? (v < 0 ? "#542788" : "#b35806") : "#3b528b"
            let outline = highlight?[i] == true ? " stroke=\"#000\" stroke-width=\"2\"" : ""
            s += "<text x=\"\(Int(left - 6))\" y=\"\(f(y + 14))\" text-anchor=\"end\"\(highlight?[i] == true ? " font-weight=\"bold\"" : "")>\(Heatmap.escape(label))</text>\n"
            s += "<rect x=\"\(f(x0))\" y=\"\(f(y + 3))\" width=\"\(f(w))\" height=\"\(f(rowH - 6))\" fill=\"\(fill)\"\(outline)><title>\(Heatmap.escape(tooltips[i]))</title></rect>\n"
            s += "<text x=\"\(f(left + barW + 6))\" y=\"\(f(y + 14))\" fill=\"#333\">\(String(format: "%.3g", v))</text>\n"
        }
        s += "<line x1=\"\(f(left))\" y1=\"\(f(bottom + 2))\" x2=\"\(f(left + barW))\" y2=\"\(f(bottom + 2))\" stroke=\"#333\"/>\n"
        s += "<line x1=\"\(f(zero))\" y1=\"\(f(top))\" x2=\"\(f(zero))\" y2=\"\(f(bottom + 2))\" stroke=\"#333\"/>\n"
        for v in Set([lo, 0, range.upperBound]).sorted() {
            s += "<text x=\"\(f(x(v)))\" y=\"\(f(bottom + 16))\" text-anchor=\"middle\">\(String(format: "%.3g", v))</text>\n"
        }
        s += "<text x=\"\(f(left + barW / 2))\" y=\"\(f(bottom + 34))\" text-anchor=\"middle\" font-style=\"italic\">\(Heatmap.escape(xLabel))</text>\n"
        return s + "</svg>\n"
    }

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }
}
