// The claims of the study droplab reproduces (Liu, Bauer and Manning, "Drop Dropout on
// Single-Epoch Language Model Pretraining", Findings of ACL 2025, arXiv 2505.24788), each read off
// one row of a report's main tables, with a verdict: agrees or disagrees (the difference is
// significant after Holm's correction over the headline family, in the study's direction or
// against it), not decided at this n, or not testable here (and why).

import Foundation

extension Report {
    struct Claim: Sendable {
        enum Variants: Sendable { case dropout, early }
        enum Expect: Sendable {
            case sign(Double)       // the sign of (variant − baseline) the study found
            case noBetter           // the variant is no better than the baseline
            case same               // no difference
        }
        let text: String
        let short: String                       // what it measures, for the answer paragraph
        let evaluator: String
        let row: @Sendable (Table) -> String?   // the row it is read from, if the table has it
        let variants: Variants
        let expect: Expect
    }

    static func row(_ id: String) -> @Sendable (Table) -> String? { { $0.first[id] != nil ? id : nil } }

    /// The study's claims, and one of ours (fact acquisition, the facts corpus's question).
    static let claims: [Claim] = [
        Claim(text: "Without dropout the language model is better: lower validation MLM loss", short: "validation MLM loss", evaluator: Recipe.pretrainKind,
              row: row("pretrain.val_loss"), variants: .dropout, expect: .sign(1)),
        Claim(text: "Without dropout: higher BLiMP accuracy", short: "BLiMP accuracy", evaluator: "blimp", row: row("blimp.accuracy"), variants: .dropout, expect: .sign(-1)),
        Claim(text: "Without dropout: higher SQuAD F1 after finetuning", short: "SQuAD F1", evaluator: "squad", row: row("squad.f1"), variants: .dropout, expect: .sign(-1)),
        Claim(text: "Early dropout is no better than none (validation MLM loss)", short: "validation MLM loss of early dropout", evaluator: Recipe.pretrainKind, row: row("pretrain.val_loss"),
              variants: .early, expect: .noBetter),
        Claim(text: "Facts are more localized without dropout: binary masks keep fewer weights", short: "binary-mask weights kept", evaluator: "bmask",
              row: row("bmask.kept_fraction"), variants: .dropout, expect: .sign(1)),
        Claim(text: "MEND edits better without dropout (trained editor, edit success at [MASK])", short: "MEND edit success", evaluator: "mend",
              row: row("mend.trained.edit"), variants: .dropout, expect: .sign(-1)),
        Claim(text: "LoReFT edits about as well with dropout as without (rank 4, change in edit success at [MASK])", short: "LoReFT rank-4 edit change", evaluator: "reft",
              row: row("reft.r4.mask_edit_success_change"), variants: .dropout, expect: .same),
        Claim(text: "Ours: without dropout the facts stated most often are learned better (accuracy at [MASK], held-out patterns)",
              short: "held-out accuracy on the most-stated facts", evaluator: "acquisition", row: { t in t.order.filter { $0.hasPrefix("acquisition.held-out.") }.max { bucket($0) < bucket($1) } },
              variants: .dropout, expect: .sign(-1)),
    ]
    static func bucket(_ id: String) -> Int { Int(id.split(separator: ".").last ?? "") ?? -1 }

    /// Early dropout: a variant that sets it; constant dropout: one with dropout above 0 that does not.
    static func isEarly(_ v: Variant) -> Bool { v.settings.contains { $0.0.hasPrefix("early-dropout") } }

    static func verdict(_ e: Claim.Expect, _ c: Comparison, better: MetricRow.Better?) -> String {
        guard let h = c.holm, c.test.low != nil else { return "not decided at this n (no interval)" }
        // a claim is about training with or without dropout: one seed's interval over units (concepts,
        // probes) describes one pair of models, and says nothing of another training run
        if c.test.n < 2, let kind = c.unitKind { return "not decided at this n (one seed: an interval over the \(kind)s of one pair of models, not over training runs)" }
        let d = c.test.meanDifference, significant = h < alpha
        switch e {
        case .sign(let s):
            return significant ? (d * s > 0 ? "agrees" : "disagrees") : "not decided at this n"
        case .noBetter:
            guard significant, let b = better else { return "not decided at this n" }
            return (b == .higher) == (d > 0) ? "disagrees (better)" : "agrees (worse)"
        case .same:
            return significant ? "disagrees (a difference)" : "not decided at this n (no difference detected)"
        }
    }

    /// One claim for one variant it is about (or for none): its comparison, if measured, and the verdict.
    struct ClaimRow {
        let claim: Claim
        let variant: String          // the variant's label; "–" for none
        let comparison: Comparison?
        let verdict: String
    }

    /// A row per claim and variant it is about: the measured difference with its interval and
    /// Holm-adjusted p, and the verdict; or why there is none.
    static func claimRows(_ recipe: Recipe, main tables: [String: Table], _ comparisons: Comparisons,
                          notLearned: [String: Double]) -> [ClaimRow] {
        var rows: [ClaimRow] = []
        for claim in claims {
            let variants = recipe.variants.filter { v in
                v.id != recipe.baseline && (claim.variants == .early ? isEarly(v) : !isEarly(v) && v.options.dropout > 0)
            }
            func line(_ variant: String, _ verdict: String) { rows.append(ClaimRow(claim: claim, variant: variant, comparison: nil, verdict: verdict)) }
            guard !variants.isEmpty else {
                line("–", "not testable here: no \(claim.variants == .early ? "early-dropout" : "dropout") variant"); continue
            }
            guard let t = tables[claim.evaluator], let id = claim.row(t) else {
                let planned = recipe.jobs.contains { $0.kind == claim.evaluator }
                line("–", tables[claim.evaluator] == nil && planned ? "not measured yet (its jobs are missing)"
                     : "not testable here: no \(claim.evaluator) \(tables[claim.evaluator] == nil ? "jobs" : "row") in this recipe"); continue
            }
            for v in variants {
                if let c = comparisons[ObjectIdentifier(t)]?[id]?[v.id] {
                    rows.append(ClaimRow(claim: claim, variant: v.label, comparison: c, verdict: verdict(claim.expect, c, better: t.first[id]!.better)))
                    continue
                }
                let unlearned = t.gated && recipe.seeds.allSatisfy { notLearned[runKey(v.id, $0)] != nil }
                let failures = Set([v.id, recipe.baseline].flatMap { w in recipe.seeds.compactMap { t.withheld[id]?[w]?[$0] } }).sorted()
                let ran = recipe.seeds.contains { t.values[id]?[v.id]?[$0] != nil || t.withheld[id]?[v.id]?[$0] != nil }
                line(v.label, unlearned ? "not testable here: did not learn its facts"
                     : !ran ? "not measured yet (its jobs are missing)"
                     : !failures.isEmpty ? "not testable here: " + failures.joined(separator: "; ") : "not decided at this n (no seed with both)")
            }
        }
        return rows
    }

    /// The claims table, with its verdicts counted in one line.
    static func claimsSection(_ rows: [ClaimRow], baseLabel: String) -> String {
        var md = "## The study's claims, checked\n\n"
        md += "Liu, Bauer and Manning, \"Drop Dropout on Single-Epoch Language Model Pretraining\" (Findings of ACL 2025): each claim read "
            + "off one row of this report, variant − \(baseLabel), with its 95% interval and Holm-adjusted p (the family of the headline "
            + "findings). Agrees / disagrees: the difference is significant (Holm-adjusted p < \(alpha)) in the study's direction / against it, "
            + "over two or more seeds (a claim is about training runs: one seed's interval over concepts or probes is about one pair of models).\n\n"
        var table = "| Claim | Variant | Variant − \(baseLabel) [95% CI] | n | p (Holm) | Verdict |\n|---|---|---|---|---|---|\n"
        for r in rows {
            if let c = r.comparison {
                let ci = interval(c).map { " " + $0 } ?? ""
                table += "| \(cell(r.claim.text)) | \(cell(r.variant)) | \(NumberFormat.signed(c.test.meanDifference))\(ci) | \(pairs(c)) | "
                    + "\(NumberFormat.pValue(c.holm)) | \(r.verdict) |\n"
            } else {
                table += "| \(cell(r.claim.text)) | \(cell(r.variant)) | – | – | – | \(r.verdict) |\n"
            }
        }
        let verdicts = rows.map(\.verdict)
        let counts = [("agrees", "agree"), ("disagrees", "disagree"), ("not decided", "not decided at this n"), ("not testable", "not testable here"),
                      ("not measured", "not measured yet")]
            .map { w in (w.1, verdicts.filter { $0.hasPrefix(w.0) }.count) }
        md += "In short: of \(verdicts.count) claim-variant pairs, " + counts.map { "\($0.1) \($0.0)" }.joined(separator: ", ") + ".\n\n"
        return md + table + "\n"
    }

    /// The answer so far in one paragraph: what was compared, on what, and what the claims' rows
    /// found, decided or not, with their differences; what cannot be tested here and why.
    static func answer(_ recipe: Recipe, _ rows: [ClaimRow], done: Int, baseLabel: String) -> String {
        let others = recipe.variants.filter { $0.id != recipe.baseline }.map(\.label)
        let pretrain = recipe.source.root["pretrain"] as? [String: Any] ?? [:]
        var md = "## The answer so far\n\n"
        md += "Compared: \(others.joined(separator: ", ")) against \(baseLabel)"
        if let preset = pretrain["preset"] as? String { md += ", `\(preset)` BERTs" }
        md += ", seed\(recipe.seeds.count == 1 ? "" : "s") \(recipe.seeds.map(String.init).joined(separator: ", ")); \(done) of \(recipe.jobs.count) jobs done. "
        func measured(_ r: ClaimRow) -> String {
            let c = r.comparison!
            return "\(r.claim.short), \(r.variant) − \(baseLabel) \(NumberFormat.signed(c.test.meanDifference))"
                + (interval(c).map { " \($0)" } ?? "") + " (\(pairs(c)))"
        }
        let decided = rows.filter { $0.comparison != nil && ($0.verdict.hasPrefix("agrees") || $0.verdict.hasPrefix("disagrees")) }
        md += decided.isEmpty ? "No claim of the study is decided yet. "
            : "Decided: " + decided.map { "\(measured($0)): \($0.verdict) with the study" }.joined(separator: "; ") + ". "
        let open = rows.filter { $0.comparison != nil && $0.verdict.hasPrefix("not decided") }
        if !open.isEmpty { md += "Measured, not decided at this n: " + open.map(measured).joined(separator: "; ") + ". " }
        let untestable = rows.filter { $0.verdict.hasPrefix("not testable here: ") && $0.variant != "–" }
        if !untestable.isEmpty {
            // one entry per claim and reason, its variants together
            var groups: [(what: String, variants: [String])] = []
            for r in untestable {
                let what = "\(r.claim.short)|\(r.verdict.dropFirst("not testable here: ".count))"
                if let k = groups.firstIndex(where: { $0.what == what }) { groups[k].variants.append(r.variant) } else { groups.append((what, [r.variant])) }
            }
            md += "Not testable here: " + groups.map { g in
                let parts = g.what.split(separator: "|", maxSplits: 1)
                return "\(parts[0]), \(g.variants.joined(separator: ", ")) (\(parts[1]))"
            }.joined(separator: "; ") + ". "
        }
        let waiting = rows.filter { $0.verdict.hasPrefix("not measured") }.count
        if waiting > 0 { md += "Not measured yet: \(counted(waiting, "claim-variant pair")). " }
        return md.trimmingCharacters(in: .whitespaces) + " The claims, one row each, follow.\n\n"
    }
}
