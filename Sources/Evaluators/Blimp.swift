// `droplab eval blimp`: BLiMP minimal pairs scored by pseudo-log-likelihood (Salazar et al.
// 2020): mask each token in turn and sum the log-probability of the true token. A pair is
// right when the good sentence scores higher. Masked copies of many sentences are batched
// (padded per batch) and the MLM head runs only at the masked positions.

import Autograd
import BERT
import Checkpoint
import Foundation
import Text
import Training

public struct BlimpOptions: CommandOptions, Sendable {
    public var dataDir: String? = nil
    public var limit: Int? = nil          // pairs per paradigm
    public var batch = 64                 // masked copies per forward pass
    public init() {}

    public func validate() throws {
        try Check.optionalRange(limit, 1...(1 << 30), "limit")
        try Check.range(batch, 1...Check.maxBatch, "batch")
    }
}

extension BlimpOptions: OptionHelp {
    public static let help: [String: String] = [
        "dataDir": "Dataset root (BLiMP in <root>/blimp/data).",
        "limit": "Pairs per paradigm (unset: all 1000).",
        "batch": "Masked copies per forward pass.",
    ]
}

public struct Accuracy: Codable, Sendable {
    public var correct = 0
    public var total = 0
    public var accuracy: Double { total > 0 ? Double(correct) / Double(total) : .nan }
    enum CodingKeys: String, CodingKey { case correct, total, accuracy }
    public init() {}
    public func encode(to e: Encoder) throws {
        var c = e.container(keyedBy: CodingKeys.self)
        try c.encode(correct, forKey: .correct); try c.encode(total, forKey: .total)
        try c.encode(accuracy, forKey: .accuracy)
    }
    public init(from d: Decoder) throws {
        let c = try d.container(keyedBy: CodingKeys.self)
        correct = try c.decode(Int.self, forKey: .correct); total = try c.decode(Int.self, forKey: .total)
    }
}

public struct BlimpResult: Codable, Sendable {
    public var checkpoint: String
    public var options: BlimpOptions
    public var overall: Accuracy
    public var perParadigm: [String: Accuracy]
    public var perPhenomenon: [String: Accuracy]   // BLiMP's linguistics_term
    public var perField: [String: Accuracy]        // syntax, semantics, morphology, ...
    public var seconds: Double
}

public struct BlimpPair: Sendable {
    public var paradigm: String, phenomenon: String, field: String
    public var good: String, bad: String
}

public enum Blimp {
    /// A field's one spelling: the data names one paradigm's field "syntax/semantics" and the
    /// others' "syntax_semantics"; both are "syntax_semantics".
    public static func field(_ raw: String) -> String { raw.replacingOccurrences(of: "/", with: "_") }

    /// Read the pairs of every paradigm file in <root>/blimp/data (sorted), `limit` per paradigm.
    public static func load(dataDir: String?, limit: Int?) throws -> [BlimpPair] {
        let dir = DataRoot.resolve(dataDir) + "/blimp/data"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir).filter({ $0.hasSuffix(".jsonl") }).sorted(),
              !names.isEmpty else { throw CorpusError("\(dir): no BLiMP .jsonl files (set --data-dir or DROPLAB_DATA)") }
        var pairs: [BlimpPair] = []
        for name in names {
            var n = 0, lineNo = 0
            try Corpus.forEachLine(dir + "/" + name) { line in
                lineNo += 1
                guard limit == nil || n < limit!, !line.isEmpty else { return }
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let good = o["sentence_good"] as? String, let bad = o["sentence_bad"] as? String else {
                    throw CorpusError("\(dir)/\(name):\(lineNo): not a BLiMP pair (needs sentence_good and sentence_bad)")
                }
                pairs.append(BlimpPair(paradigm: o["UID"] as? String ?? String(name.dropLast(6)),
                                       phenomenon: o["linguistics_term"] as? String ?? "unknown",
                                       field: field(o["field"] as? String ?? "unknown"), good: good, bad: bad))
                n += 1
            }
        }
        return pairs
    }

    /// Pseudo-log-likelihood of each token sequence (ids without [CLS]/[SEP]).
    public static func pseudoLogLikelihoods(_ model: BertModel, _ tok: WordPieceTokenizer, _ sentences: [[Int32]],
                                            batch: Int, progress: ((Int, Int) -> Void)? = nil) -> [Double] {
        // one masked copy per (sentence, position), longest first so batches pad little
        var copies: [(s: Int, pos: Int)] = []
        for (s, ids) in sentences.enumerated() { for p in ids.indices { copies.append((s, p)) } }
        copies.sort { (sentences[$0.s].count, $1.s, $1.pos) > (sentences[$1.s].count, $0.s, $0.pos) }
        var scores = [Double](repeating: 0, count: sentences.count)
        var start = 0
        while start < copies.count {
            let chunk = copies[start..<min(start + batch, copies.count)]
            let T = min(sentences[chunk.first!.s].count + 2, model.config.maxPositions)
            let B = chunk.count
            var ids = [Int32](repeating: tok.padId, count: B * T), mask = [Int32](repeating: 0, count: B * T)
            var rows: [Int32] = [], targets: [Int32] = []
            for (b, c) in chunk.enumerated() {
                let sent = sentences[c.s].prefix(T - 2)
                let row = [tok.clsId] + sent + [tok.sepId]
                for (k, id) in row.enumerated() { ids[b * T + k] = id; mask[b * T + k] = 1 }
                ids[b * T + 1 + c.pos] = tok.maskId
                rows.append(Int32(b * T + 1 + c.pos)); targets.append(sentences[c.s][c.pos])
            }
            let tape = Tape(recording: false)
            let hidden = model.encode(tape, Batch(ids: ids, attentionMask: mask, batchSize: B, seqLen: T))
            let logits = model.mlmLogits(tape, hidden, rows: rows)
            let V = logits.lastDim
            for (r, c) in chunk.enumerated() {
                let row = logits.data + r * V
                var mx = row[0]
                for v in 1..<V { mx = max(mx, row[v]) }
                var sum = 0.0
                for v in 0..<V { sum += exp(Double(row[v] - mx)) }
                scores[c.s] += Double(row[Int(targets[r])] - mx) - log(sum)
            }
            start += B
            progress?(start, copies.count)
        }
        return scores
    }

    public static func run(checkpoint: String, options o: BlimpOptions, log: @escaping (String) -> Void) throws -> BlimpResult {
        try o.validate()
        let began = Date()
        let ck = try Checkpoint.load(checkpoint)
        guard ck.model.head == .mlm else { throw CheckpointError(checkpoint, "has a \(ck.model.head.rawValue) head, not an MLM head") }
        let tok = try WordPieceTokenizer(vocab: ck.vocab)
        let pairs = try load(dataDir: o.dataDir, limit: o.limit)
        let sentences = pairs.flatMap { [tok.encode($0.good), tok.encode($0.bad)] }
        log("BLiMP: \(pairs.count) pairs, \(sentences.reduce(0) { $0 + $1.count }) masked copies")
        var lastShown = Date.distantPast
        let scores = pseudoLogLikelihoods(ck.model, tok, sentences, batch: o.batch) { done, total in
            if Date().timeIntervalSince(lastShown) > 10 || done == total {
                lastShown = Date()
                log(String(format: "BLiMP: %d/%d masked copies scored (%.0f%%)", done, total, 100 * Double(done) / Double(total)))
            }
        }
        var result = BlimpResult(checkpoint: checkpoint, options: o, overall: .init(), perParadigm: [:], perPhenomenon: [:],
                                 perField: [:], seconds: 0)
        for (i, p) in pairs.enumerated() {
            let right = scores[2 * i] > scores[2 * i + 1]
            let add = right ? 1 : 0
            result.overall.total += 1; result.overall.correct += add
            result.perParadigm[p.paradigm, default: .init()].total += 1; result.perParadigm[p.paradigm]!.correct += add
            result.perPhenomenon[p.phenomenon, default: .init()].total += 1; result.perPhenomenon[p.phenomenon]!.correct += add
            result.perField[p.field, default: .init()].total += 1; result.perField[p.field]!.correct += add
        }
        result.seconds = Date().timeIntervalSince(began)
        return result
    }
}
