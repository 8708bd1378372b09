// SQuAD metrics exactly as the official evaluate-v1.1.py / evaluate-v2.0.py scripts (Python 3):
//
//   normalize(s) = white_space_fix(remove_articles(remove_punc(lower(s))))
//     lower            str.lower(): full Unicode lower-case mapping, with Python's Final_Sigma rule
//     remove_punc      drop characters in string.punctuation (ASCII only; "—" or "“" stay)
//     remove_articles  re.sub(r'\b(a|an|the)\b', ' ', s) with Python's Unicode \b / \w
//     white_space_fix  ' '.join(s.split()): split on Python's str.isspace() characters
//   EM  = normalize(pred) == normalize(gold) (compared as unicode scalars, no canonical equivalence)
//   F1  = token F1 over the Counter intersection of normalized whitespace tokens;
//         v1.1: no common token -> 0 (so empty vs empty is 0);
//         v2.0: either side without tokens -> F1 = EM, and gold answers that normalize to ""
//               are dropped, an unanswerable question has the gold list [""].
//   Both take the max over the gold answers and report 100 * mean over questions.
//
// Strings are handled as unicode scalar arrays throughout: Swift's String == and hashing use
// canonical equivalence ("é" == "e\u{301}"), Python's do not.

import Datasets
import Foundation

public enum SquadMetrics {
    public typealias Scalars = [Unicode.Scalar]

    /// Python's string.punctuation.
    static let punctuation: Set<UInt32> = Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".unicodeScalars.map(\.value))

    /// Python's str.isspace() (Py_UNICODE_ISSPACE): White_Space plus the bidi B/S/WS
    /// separators U+001C...U+001F.
    static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Python's \w for str patterns: str.isalnum() (letters Lu/Ll/Lt/Lm/Lo or a numeric type) or "_".
    static func isPythonWord(_ c: Unicode.Scalar) -> Bool {
        if c.value < 0x80 {
            let v = c.value
            return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
        }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return c.properties.numericType != nil
        }
    }

    /// Python's str.lower(): full lower-case mappings; capital sigma becomes final sigma when
    /// preceded by a cased letter (skipping case-ignorables) and not followed by one.
    static func lower(_ s: Scalars) -> Scalars {
        var out: Scalars = []
        out.reserveCapacity(s.count)
        for (i, c) in s.enumerated() {
            if c.value < 0x80 {
                out.append(c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 32)! : c)
            } else if c.value == 0x3A3 {
                out.append(Unicode.Scalar(finalSigma(s, i) ? 0x3C2 : 0x3C3)!)
            } else {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    private static func finalSigma(_ s: Scalars, _ i: Int) -> Bool {
        var j = i - 1
        while j >= 0 && s[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && s[j].properties.isCased else { return false }
        j = i + 1
        while j < s.count && s[j].properties.isCaseIgnorable { j += 1 }
        return j == s.count || !s[j].properties.isCased
    }

    /// re.sub(r'\b(a|an|the)\b', ' ', s): leftmost non-overlapping matches, alternatives tried in order.
    static func removeArticles(_ s: Scalars) -> Scalars {
        let articles: [Scalars] = [["a"], ["a", "n"], ["t", "h", "e"]]
        var out: Scalars = []
        out.reserveCapacity(s.count)
        var i = 0
        scan: while i < s.count {
            // \b before: the previous character is not a word character (all articles start with one)
            if i == 0 || !isPythonWord(s[i - 1]) {
                for a in articles where i + a.count <= s.count && s[i..<i + a.count].elementsEqual(a) {
                    let end = i + a.count
                    if end == s.count || !isPythonWord(s[end]) {
                        out.append(" ")
                        i = end
                        continue scan
                    }
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    /// The normalized whitespace tokens of `s` (normalize(s).split()).
    public static func tokens(_ s: String) -> [Scalars] {
        let noPunct = lower(Array(s.unicodeScalars)).filter { !punctuation.contains($0.value) }
        return removeArticles(noPunct).split(whereSeparator: isPythonSpace).map(Array.init)
    }

    /// The official normalize_answer.
    public static func normalize(_ s: String) -> String {
        var v = String.UnicodeScalarView()
        for (k, t) in tokens(s).enumerated() {
            if k > 0 { v.append(" ") }
            v.append(contentsOf: t)
        }
        return String(v)
    }

    static func exact(_ p: [Scalars], _ g: [Scalars]) -> Double { p == g ? 1 : 0 }

    static func f1(_ p: [Scalars], _ g: [Scalars], version: SquadVersion) -> Double {
        if version == .v2 && (p.isEmpty || g.isEmpty) { return p == g ? 1 : 0 }
        var counts: [Scalars: Int] = [:]
        for t in g { counts[t, default: 0] += 1 }
        var same = 0
        for t in p { if let c = counts[t], c > 0 { counts[t] = c - 1; same += 1 } }
        if same == 0 { return 0 }
        let precision = 1.0 * Double(same) / Double(p.count)
        let recall = 1.0 * Double(same) / Double(g.count)
        return (2 * precision * recall) / (precision + recall)
    }

    /// The gold list the official script scores against: v1.1 all answer texts ([""] when there
    /// are none: evaluate-v1.1.py has no unanswerable questions); v2.0 the texts
    /// that do not normalize to "", or [""] when none is left (unanswerable).
    public static func goldList(_ answers: [String], version: SquadVersion) -> [String] {
        guard version == .v2 else { return answers.isEmpty ? [""] : answers }
        let kept = answers.filter { !tokens($0).isEmpty }
        return kept.isEmpty ? [""] : kept
    }

    /// EM and F1 (each 0...1) of one prediction: max over the gold answers.
    public static func score(prediction: String, answers: [String], version: SquadVersion) -> (exact: Double, f1: Double) {
        let p = tokens(prediction)
        var em = 0.0, f = 0.0
        var first = true
        for g in goldList(answers, version: version) {
            let gt = tokens(g)
            let e = exact(p, gt), ff = f1(p, gt, version: version)
            // Python's max(...) over the list; starting from the first element keeps NaN-free order
            if first { em = e; f = ff; first = false } else { em = max(em, e); f = max(f, ff) }
        }
        return (em, f)
    }

    /// One question to score.
    public struct Item: Sendable {
        public var id: String
        public var answers: [String]      // gold answer texts ([] = unanswerable)
        public var prediction: String
        public var nullOdds: Double?      // v2: null score - best non-null score (higher = more likely no answer)
        public var nonNullPrediction: String?  // v2: the best non-null span (for the threshold search)
        public init(id: String, answers: [String], prediction: String, nullOdds: Double? = nil, nonNullPrediction: String? = nil) {
            self.id = id; self.answers = answers; self.prediction = prediction
            self.nullOdds = nullOdds; self.nonNullPrediction = nonNullPrediction
        }
    }

    /// Aggregate EM/F1 (x100) as the official scripts print them; v2 adds the HasAns/NoAns splits
    /// and, when requested, best_exact/best_f1 with their thresholds.
    public static func evaluate(_ items: [Item], version: SquadVersion, bestThreshold: Bool = false) -> SquadScores {
        var r = SquadScores(exact: 0, f1: 0, total: items.count)
        var em: [Double] = [], f: [Double] = []
        em.reserveCapacity(items.count); f.reserveCapacity(items.count)
        for it in items {
            let s = score(prediction: it.prediction, answers: it.answers, version: version)
            em.append(s.exact); f.append(s.f1)
        }
        func mean(_ xs: [Double], _ keep: (Int) -> Bool) -> (Double, Int) {
            var sum = 0.0, n = 0
            for (i, x) in xs.enumerated() where keep(i) { sum += x; n += 1 }
            return (n > 0 ? 100.0 * sum / Double(n) : 0, n)
        }
        (r.exact, _) = mean(em) { _ in true }
        (r.f1, _) = mean(f) { _ in true }
        guard version == .v2 else { return r }
        let hasAns = items.map { !$0.answers.isEmpty }   // the official make_qid_to_has_ans: bool(qa['answers'])
        if hasAns.contains(true) {
            let (e, n) = mean(em) { hasAns[$0] }
            r.hasAnsExact = e; r.hasAnsF1 = mean(f) { hasAns[$0] }.0; r.hasAnsTotal = n
        }
        if hasAns.contains(false) {
            let (e, n) = mean(em) { !hasAns[$0] }
            r.noAnsExact = e; r.noAnsF1 = mean(f) { !hasAns[$0] }.0; r.noAnsTotal = n
        }
        if bestThreshold {
            // scores of the non-null predictions, as the official script's raw scores with na_probs
            var rawEM: [Double] = [], rawF1: [Double] = []
            for it in items {
                let s = score(prediction: it.nonNullPrediction ?? it.prediction, answers: it.answers, version: .v2)
                rawEM.append(s.exact); rawF1.append(s.f1)
            }
            let odds = items.map { $0.nullOdds ?? 0 }
            let preds = items.map { $0.nonNullPrediction ?? $0.prediction }
            (r.bestExact, r.bestExactThreshold) = findBestThreshold(preds: preds, scores: rawEM, naProbs: odds, hasAns: hasAns)
            (r.bestF1, r.bestF1Threshold) = findBestThreshold(preds: preds, scores: rawF1, naProbs: odds, hasAns: hasAns)
        }
        return r
    }

    /// The official find_best_thresh: start with every question answered "" (score = number of
    /// unanswerable ones), then in increasing order of na_prob switch each to its prediction;
    /// the best running score and the na_prob where it is reached. Predict "" when na_prob > threshold.
    public static func findBestThreshold(preds: [String], scores: [Double], naProbs: [Double], hasAns: [Bool]) -> (Double, Double) {
        let n = preds.count
        guard n > 0 else { return (0, 0) }
        var cur = Double(hasAns.filter { !$0 }.count)
        var best = cur, bestThresh = 0.0
        // Python's sorted() is stable: ties keep the input order
        let order = (0..<n).sorted { naProbs[$0] < naProbs[$1] || (naProbs[$0] == naProbs[$1] && $0 < $1) }
        for i in order {
            let diff: Double
            if hasAns[i] { diff = scores[i] } else { diff = preds[i].isEmpty ? 0 : -1 }
            cur += diff
            if cur > best { best = cur; bestThresh = naProbs[i] }
        }
        return (100.0 * best / Double(n), bestThresh)
    }
}

/// Aggregate SQuAD scores, with the official scripts' key names.
public struct SquadScores: Codable, Sendable, Equatable {
    public var exact: Double
    public var f1: Double
    public var total: Int
    public var hasAnsExact: Double? = nil
    public var hasAnsF1: Double? = nil
    public var hasAnsTotal: Int? = nil
    public var noAnsExact: Double? = nil
    public var noAnsF1: Double? = nil
    public var noAnsTotal: Int? = nil
    public var bestExact: Double? = nil
    public var bestExactThreshold: Double? = nil
    public var bestF1: Double? = nil
    public var bestF1Threshold: Double? = nil

    public init(exact: Double, f1: Double, total: Int) { self.exact = exact; self.f1 = f1; self.total = total }

    enum CodingKeys: String, CodingKey {
        case exact, f1, total
        case hasAnsExact = "HasAns_exact", hasAnsF1 = "HasAns_f1", hasAnsTotal = "HasAns_total"
        case noAnsExact = "NoAns_exact", noAnsF1 = "NoAns_f1", noAnsTotal = "NoAns_total"
        case bestExact = "best_exact", bestExactThreshold = "best_exact_thresh"
        case bestF1 = "best_f1", bestF1Threshold = "best_f1_thresh"
    }
}
