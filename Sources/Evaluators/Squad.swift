// `droplab eval squad`: finetune a pretrained checkpoint for extractive QA on SQuAD (fresh
// BertForQuestionAnswering head, the shared Trainer), predict answers on the dev set and score
// them exactly as the official evaluate-v1.1 / evaluate-v2.0 scripts.
//
// Post-processing (original BERT recipe): per window, the n-best start and end positions;
// pairs inside the window's context, start in its max-context window, end >= start, at most
// `maxAnswerLen` tokens; the best start+end logit sum over all windows of a question. v2.0:
// null score = min over windows of start[CLS] + end[CLS]; predict "" when null score - best
// non-null score > the threshold.
//
// Outputs (the job directory of `droplab eval squad` or of a recipe, see Recipes/EvalArguments):
// result.json (metrics, settings, data hashes, skips, timing, training curve), predictions.json
// (official format: question id -> answer text), for v2.0 null-odds.json (id -> null odds, the
// official script's --na-prob-file), and with --save the finetuned checkpoint in finetune/last.h5
// (+ metrics.jsonl).

import Autograd
import BERT
import Checkpoint
import Datasets
import Foundation
import Text
import Training

public struct SquadOptions: CommandOptions, Sendable {
    public var dataDir: String? = nil
    public var train: String? = nil           // default: <data root>/squad/train-v1.1.json
    public var dev: String? = nil             // default: <data root>/squad/dev-v1.1.json or dev-v2.0.json
    public var version = "1.1"
    public var epochs = 2
    public var lr: Float = 3e-5
    public var batch = 32
    public var evalBatch = 32
    public var warmup: Float = 0.1            // fraction of steps (< 1) or a step count (>= 1)
    public var weightDecay: Float = 0.01
    public var finetuneDropout: Float = 0.1   // hidden and attention dropout while finetuning
    public var maxTrainExamples: Int? = nil
    public var maxDevExamples: Int? = nil
    public var seed: UInt64 = 0
    public var save = false
    public var features = SquadFeatureOptions()
    public var maxAnswerLen = 30
    public var nBest = 20
    public var nullThreshold = 0.0
    public var bestThreshold = false
    public var logEvery = 10
    public var precision: Precision? = nil    // of the finetuning's matrix products; nil: fp32 (absent from fp32 jobs' identity)
    public init() {}

    public func validate() throws {
        let v = try Squad.version(version)
        try Check.range(epochs, 0...1000, "epochs")
        try Check.that(lr > 0 && lr.isFinite, "lr", "must be positive, got \(lr)")
        try Check.range(batch, 1...Check.maxBatch, "batch")
        try Check.range(evalBatch, 1...Check.maxBatch, "eval-batch")
        try Check.number(warmup, 0...Float(Check.maxSteps), "warmup")
        try Check.number(weightDecay, 0...1, "weight-decay")
        try Check.probability(finetuneDropout, "finetune-dropout")
        try Check.optionalRange(maxTrainExamples, 1...(1 << 30), "max-train-examples")
        try Check.optionalRange(maxDevExamples, 1...(1 << 30), "max-dev-examples")
        try features.validate()
        try Check.range(maxAnswerLen, 1...Pretrain.maxPositions, "max-answer-len")
        try Check.range(nBest, 1...Pretrain.maxPositions, "n-best")
        try Check.that(nullThreshold.isFinite, "null-threshold", "must be finite, got \(nullThreshold)")
        try Check.range(logEvery, 1...Check.maxSteps, "log-every")
        try Check.that(!bestThreshold || v == .v2, "best-threshold", "needs --version 2.0 (v1.1 has no unanswerable questions)")
    }
}

extension SquadOptions: OptionHelp {
    public static let help: [String: String] = [
        "dataDir": "Dataset root (SQuAD in <root>/squad).",
        "train": "Training file (SQuAD JSON; unset: <data root>/squad/train-v1.1.json, also for v2.0).",
        "dev": "Evaluation file (SQuAD JSON; unset: <data root>/squad/dev-v1.1.json or dev-v2.0.json, by version).",
        "version": "SQuAD version: 1.1 or 2.0.",
        "epochs": "Passes over the training features (0: evaluate the checkpoint as is).",
        "lr": "Peak learning rate.",
        "batch": "Training batch size (features per optimizer step).",
        "evalBatch": "Evaluation batch size.",
        "warmup": "Warmup: fraction of steps (< 1) or steps (>= 1); then linear decay to 0.",
        "weightDecay": "AdamW weight decay.",
        "finetuneDropout": "Hidden and attention dropout while finetuning.",
        "maxTrainExamples": "Use only the first N training questions (unset: all).",
        "maxDevExamples": "Evaluate only the first N dev questions (unset: all).",
        "seed": "Seed for the QA head, data order and dropout.",
        "save": "Keep the finetuned checkpoint in the results directory (squad-run/).",
        "features": "The windows over question and context (see the SQuAD feature options).",
        "maxAnswerLen": "Longest answer in tokens.",
        "nBest": "Start and end candidates per window.",
        "nullThreshold": "v2.0: predict no answer when null score - best span score exceeds this.",
        "bestThreshold": "v2.0: also report the best threshold and its EM/F1 (official best_exact/best_f1).",
        "logEvery": "Log a training metrics line every N steps.",
        "precision": "Finetuning's matrix products: fp32 or bf16 (as pretrain --precision; evaluation stays fp32; unset: fp32).",
    ]
}

public struct SquadDataSummary: Codable, Sendable {
    public var file: String
    public var sha256: String
    public var bytes: Int
    public var fileVersion: String?
    public var questionsInFile: Int
    public var questionsUsed: Int
    public var contexts: Int
    public var features: Int
    public var truncatedQuestions: Int
    public var skipped: [String: Int]
    public var skippedTotal: Int
    public var answerStartMismatches: Int
    public var answersOutsideWindow: Int?
}

public struct SquadFinetuneSummary: Codable, Sendable {
    public var steps: Int
    public var epochs: Int
    public var tokens: Int
    public var stopReason: String
    public var warmupSteps: Int
    public var hiddenDropout: Float
    public var attentionDropout: Float
    public var firstLoss: Double?
    public var lastLoss: Double?
    public var losses: [[Double]]             // [step, mean train loss since the previous entry]
    public var seconds: Double
}

public struct SquadResult: Codable, Sendable {
    public var checkpoint: String
    public var version: String
    public var options: SquadOptions
    public var modelConfig: BertConfig
    public var train: SquadDataSummary?
    public var trainNote: String?
    public var dev: SquadDataSummary
    public var finetune: SquadFinetuneSummary?
    public var metrics: SquadScores
    public var seconds: [String: Double]
    public var savedCheckpoint: String?
}

public struct SquadPrediction: Sendable {
    public var text: String                   // the answer (after the null threshold for v2.0)
    public var nonNull: String                // the best non-null span ("" when none is valid)
    public var nullOdds: Double?              // v2.0: null score - best non-null score
}

public enum Squad {
    /// --version as a SquadVersion, or a one-line error.
    public static func version(_ s: String) throws -> SquadVersion {
        guard let v = SquadVersion(rawValue: s) else { throw OptionError(key: "version", "must be 1.1 or 2.0, got '\(s)'") }
        return v
    }

    /// The train and dev files: explicit paths, else the defaults under the data root. There is
    /// no SQuAD v2.0 train set in the shared data: without --train, v2.0 finetunes on
    /// train-v2.0.json when the data root has one, else on train-v1.1.json (with a note).
    static func files(_ o: SquadOptions, version v: SquadVersion) -> (train: String, dev: String, note: String?) {
        let dir = DataRoot.resolve(o.dataDir) + "/squad"
        let dev = o.dev ?? dir + (v == .v1 ? "/dev-v1.1.json" : "/dev-v2.0.json")
        if let t = o.train { return (t, dev, nil) }
        if v == .v1 { return (dir + "/train-v1.1.json", dev, nil) }
        if FileManager.default.fileExists(atPath: dir + "/train-v2.0.json") { return (dir + "/train-v2.0.json", dev, nil) }
        return (dir + "/train-v1.1.json", dev,
                "no SQuAD v2.0 train set in \(dir): finetuning on train-v1.1.json (answerable questions only; the model never sees an unanswerable question). Pass --train for another file.")
    }

    static func summary(_ ds: SquadDataset, _ f: SquadFeatures, training: Bool) -> SquadDataSummary {
        var skipped = ds.skipped
        for (k, v) in f.skipped { skipped[k, default: 0] += v }
        let used = ds.examples.count - f.skipped.values.reduce(0, +)
        return SquadDataSummary(file: ds.path, sha256: ds.sha256, bytes: ds.bytes, fileVersion: ds.fileVersion,
                                questionsInFile: ds.questionsInFile, questionsUsed: used, contexts: ds.contexts.count,
                                features: f.features.count, truncatedQuestions: f.truncatedQuestions, skipped: skipped,
                                skippedTotal: skipped.values.reduce(0, +), answerStartMismatches: ds.answerStartMismatches,
                                answersOutsideWindow: training ? f.outOfWindow : nil)
    }

    /// Start and end logits of every feature (unpadded), batched longest first.
    public static func logits(_ model: BertModel, _ features: [SquadFeature], batch: Int, padId: Int32,
                              progress: ((Int, Int) throws -> Void)? = nil) rethrows -> [(start: [Float], end: [Float])] {
        var out = [(start: [Float], end: [Float])](repeating: ([], []), count: features.count)
        let order = features.indices.sorted { (features[$0].length, $1) > (features[$1].length, $0) }
        var done = 0
        while done < order.count {
            let chunk = Array(order[done..<min(done + batch, order.count)])
            let b = SquadFeatures.batch(chunk.map { features[$0] }, padId: padId)
            let tape = Tape(recording: false)
            let (s, e) = model.qaLogits(tape, model.encode(tape, b), batchSize: b.batchSize)
            for (r, f) in chunk.enumerated() {
                let n = features[f].length
                out[f] = (Array(UnsafeBufferPointer(start: s.data + r * b.seqLen, count: n)),
                          Array(UnsafeBufferPointer(start: e.data + r * b.seqLen, count: n)))
            }
            done += chunk.count
            try progress?(done, order.count)
        }
        return out
    }

    /// Indices of the n largest values (largest first; ties: lower index first).
    static func topN(_ x: [Float], _ n: Int) -> [Int] {
        Array(x.indices.sorted { x[$0] > x[$1] || (x[$0] == x[$1] && $0 < $1) }.prefix(n))
    }

    /// The answer of every example from the features' logits.
    public static func postprocess(_ ds: SquadDataset, _ feats: SquadFeatures, _ logits: [(start: [Float], end: [Float])],
                                   version: SquadVersion, nBest: Int, maxAnswerLen: Int, nullThreshold: Double) -> [SquadPrediction] {
        ds.examples.indices.map { e in
            var best: (score: Double, f: Int, i: Int, j: Int)? = nil
            var nullScore = Double.infinity
            for f in feats.ofExample[e] {
                let ft = feats.features[f], (s, en) = logits[f]
                nullScore = min(nullScore, Double(s[0]) + Double(en[0]))
                let ends = topN(en, nBest)
                for i in topN(s, nBest) {
                    let ci = i - ft.contextStart
                    guard ci >= 0 && ci < ft.docLength && ft.maxContext[ci] else { continue }
                    for j in ends {
                        let cj = j - ft.contextStart
                        guard cj >= ci && cj < ft.docLength && j - i + 1 <= maxAnswerLen else { continue }
                        let score = Double(s[i]) + Double(en[j])
                        if best == nil || score > best!.score { best = (score, f, i, j) }
                    }
                }
            }
            var text = ""
            if let b = best {
                let ft = feats.features[b.f], ctx = feats.contextTokens[ds.examples[e].context]
                let a = Int(ctx.starts[ft.docStart + b.i - ft.contextStart]), z = Int(ctx.ends[ft.docStart + b.j - ft.contextStart])
                text = ds.contextText(ds.examples[e].context, a, z)
            }
            guard version == .v2 else { return SquadPrediction(text: text, nonNull: text, nullOdds: nil) }
            // no window or no valid span: only the null answer is possible
            let odds = best.map { nullScore - $0.score } ?? Double.greatestFiniteMagnitude
            return SquadPrediction(text: odds > nullThreshold ? "" : text, nonNull: text, nullOdds: odds)
        }
    }

    public struct Output {
        public var result: SquadResult
        public var predictions: [String: String]
        public var nullOdds: [String: Double]?
    }

    /// Validate, finetune (unless --epochs 0), predict and score; writes nothing.
    /// `runDir` is where the Trainer writes (caller deletes it).
    public static func finetuneAndEvaluate(checkpoint: String, options o: SquadOptions, runDir: String,
                                           log: @escaping (String) -> Void) throws -> Output {
        let began = Date()
        try o.validate()
        try Check.machineRuns(o.precision)
        let v = try version(o.version)
        let ck = try Checkpoint.load(checkpoint, head: .qa, seed: o.seed)
        let model = ck.model
        try o.features.check(checkpoint: checkpoint, model.config)
        let tok = try WordPieceTokenizer(vocab: ck.vocab)
        let (trainPath, devPath, note) = files(o, version: v)
        let dev = try SquadData.load(devPath, version: v, purpose: .evaluation, limit: o.maxDevExamples)
        let train = o.epochs > 0 ? try SquadData.load(trainPath, version: v, purpose: .training, limit: o.maxTrainExamples) : nil
        if let note, train != nil { log("note: " + note) }
        if o.epochs == 0, let f = try? HDF5File.open(checkpoint), !f.contains(BertModule.qaOutputs.weight) {
            log("note: --epochs 0 with an MLM checkpoint: the QA head is untrained (random)")
        }
        let devFeatures = SquadFeatures.build(dev, tokenizer: tok, options: o.features, training: false, log: log)
        let trainFeatures = train.map { SquadFeatures.build($0, tokenizer: tok, options: o.features, training: true, log: log) }
        let loaded = Date()
        var result = SquadResult(checkpoint: checkpoint, version: v.rawValue, options: o, modelConfig: model.config,
                                 train: nil, trainNote: train != nil ? note : nil,
                                 dev: summary(dev, devFeatures, training: false), finetune: nil,
                                 metrics: SquadScores(exact: 0, f1: 0, total: 0), seconds: [:], savedCheckpoint: nil)
        log("SQuAD v\(v.rawValue): dev \(devPath): \(dev.examples.count) questions, \(devFeatures.features.count) features"
            + (dev.skippedTotal > 0 ? ", \(dev.skippedTotal) skipped" : ""))

        if let train, let tf = trainFeatures {
            result.train = summary(train, tf, training: true)
            guard !tf.features.isEmpty else { throw SquadError("\(trainPath): no usable training questions") }
            let data = SquadTrainData(features: tf.features, epochs: o.epochs, batchSize: o.batch, seed: o.seed, padId: tok.padId)
            let steps = data.steps
            let warmup = o.warmup < 1 ? Int((o.warmup * Float(steps)).rounded()) : Int(o.warmup)
            var topt = TrainerOptions(steps: steps, schedule: LRSchedule(peak: o.lr, warmupSteps: warmup, totalSteps: steps, decay: .linear),
                                      hiddenDropout: o.finetuneDropout, attentionDropout: o.finetuneDropout, seed: o.seed)
            topt.adamw.weightDecay = o.weightDecay
            topt.logEvery = o.logEvery
            topt.precision = o.precision
            log("finetuning on \(trainPath): \(result.train!.questionsUsed) questions, \(tf.features.count) features, "
                + "\(o.epochs) epoch(s) = \(steps) steps of \(o.batch), lr \(o.lr), warmup \(warmup), dropout \(o.finetuneDropout)"
                + (result.train!.skippedTotal > 0 ? "; \(result.train!.skippedTotal) questions skipped" : ""))
            let trainer = Trainer(model: model, vocab: ck.vocab, data: data, options: topt, runDir: runDir,
                                  loss: { tape, model, item, plan in
                                      model.qaLoss(tape, item.batch, start: item.start, end: item.end, dropout: plan)
                                  })
            trainer.log = log
            let t0 = Date()
            let s = try trainer.run()
            if s.reason == .interrupted {
                throw SquadError("finetuning interrupted (SIGINT) after step \(s.steps) of \(steps); nothing written")
            }
            if !o.save { log("the finetuned weights are not kept (temporary run directory); --save keeps them") }
            let losses = readLosses(runDir + "/metrics.jsonl")
            let reason = s.reason == .budget ? "completed \(o.epochs) epoch(s)" : s.reason.rawValue
            result.finetune = SquadFinetuneSummary(steps: s.steps, epochs: o.epochs, tokens: s.tokens, stopReason: reason,
                                                   warmupSteps: warmup, hiddenDropout: o.finetuneDropout,
                                                   attentionDropout: o.finetuneDropout, firstLoss: losses.first?[1],
                                                   lastLoss: losses.last?[1], losses: losses, seconds: Date().timeIntervalSince(t0))
        }

        let t1 = Date()
        var lastShown = Date()
        let lg = try logits(model, devFeatures.features, batch: o.evalBatch, padId: tok.padId) { done, total in
            // after finetuning the Trainer's SIGINT handler is installed: honour it here too
            if Interrupt.requested { throw SquadError("interrupted (SIGINT) during evaluation; nothing written") }
            if Date().timeIntervalSince(lastShown) > 10 || done == total {
                lastShown = Date()
                log(String(format: "SQuAD eval: %d/%d features (%.0f%%)", done, total, 100 * Double(done) / Double(max(total, 1))))
            }
        }
        let preds = postprocess(dev, devFeatures, lg, version: v, nBest: o.nBest, maxAnswerLen: o.maxAnswerLen,
                                nullThreshold: o.nullThreshold)
        let items = zip(dev.examples, preds).map {
            SquadMetrics.Item(id: $0.id, answers: $0.answers.map(\.text), prediction: $1.text, nullOdds: $1.nullOdds, nonNullPrediction: $1.nonNull)
        }
        result.metrics = SquadMetrics.evaluate(items, version: v, bestThreshold: o.bestThreshold)
        result.seconds = ["load": loaded.timeIntervalSince(began), "finetune": result.finetune?.seconds ?? 0,
                          "evaluate": Date().timeIntervalSince(t1), "total": Date().timeIntervalSince(began)]
        var predictions: [String: String] = [:], odds: [String: Double] = [:]
        for (ex, p) in zip(dev.examples, preds) { predictions[ex.id] = p.text; odds[ex.id] = p.nullOdds }
        return Output(result: result, predictions: predictions, nullOdds: v == .v2 ? odds : nil)
    }

    /// (step, train_loss) of each metrics.jsonl line.
    static func readLosses(_ path: String) -> [[Double]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let step = (o["step"] as? NSNumber)?.doubleValue, let loss = (o["train_loss"] as? NSNumber)?.doubleValue else { return nil }
            return [step, loss]
        }
    }
}
