// The training loop, shared by pretraining and finetuning: gradient accumulation, AdamW
// with warmup/decay and clipping, scheduled dropout, periodic evaluation and checkpoints,
// metrics.jsonl, progress output, exact resume, SIGINT = save and stop, NaN = stop.
//
// Data parallel (`world`, under mpirun): every rank reads the whole micro-batch stream and
// computes micro-batches r, r+N, ... of each step (dropout masks keyed by the micro-batch's
// global index, as in one process); the accumulated gradients are summed with one
// MPI_Allreduce over the flat gradient buffer after the step's last backward, and every rank
// applies the same AdamW step. The cursor and state are those of one process with the same
// `accumulation` (micro-batches per step over all ranks), so a checkpoint resumes on any
// number of ranks that divides it. Rank 0 alone evaluates and writes metrics, checkpoints and
// progress.

import Autograd
import BERT
import Checkpoint
import Foundation
import Text

/// A deterministic stream of training items with a resumable cursor.
public protocol TrainingData {
    associatedtype Item
    associatedtype Cursor: Codable
    var cursor: Cursor { get set }
    /// Next micro-batch, or nil when the data is exhausted.
    mutating func next() throws -> Item?
    /// Tokens in an item (for throughput and token budgets).
    func tokens(in item: Item) -> Int
}

public struct TrainerOptions: Codable, Equatable, Sendable {
    public var steps: Int                     // optimizer steps to run (the budget)
    public var accumulation: Int = 1          // micro-batches per optimizer step
    public var schedule: LRSchedule
    public var adamw: AdamWConfig = .init()
    public var hiddenDropout: Float
    public var attentionDropout: Float
    public var earlyDropoutSteps: Int? = nil  // dropout only for the first N steps
    public var seed: UInt64
    public var saveEvery: Int = 0             // 0: only at the end
    public var evalEvery: Int = 0             // 0: only at the end
    public var logEvery: Int = 10
    public var precision: Precision? = nil    // of the matrix products; nil: fp32 (so fp32 runs' state is as before)
    public init(steps: Int, schedule: LRSchedule, hiddenDropout: Float, attentionDropout: Float, seed: UInt64) {
        self.steps = steps; self.schedule = schedule; self.hiddenDropout = hiddenDropout
        self.attentionDropout = attentionDropout; self.seed = seed
    }

    /// Dropout probabilities in force at `step`.
    public func dropout(at step: Int) -> (hidden: Float, attention: Float) {
        if let n = earlyDropoutSteps, step >= n { return (0, 0) }
        return (hiddenDropout, attentionDropout)
    }
}

/// The metrics window since the last logged line (a resumed run continues it, so its lines
/// average the same steps as the uninterrupted run's).
struct LogWindow: Codable {
    var lossSum = 0.0
    var steps = 0
    var tokens = 0
}

/// What the trainer stores in a checkpoint's training/state.json.
struct TrainerState<Cursor: Codable>: Codable {
    var step: Int
    var tokens: Int
    var cursor: Cursor
    var options: TrainerOptions
    var window: LogWindow?          // absent in checkpoints written before it was saved
}

public struct TrainerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public enum StopReason: String, Codable, Sendable {
    case budget = "token budget reached"
    case endOfData = "end of data (single epoch)"
    case interrupted = "interrupted (SIGINT)"
}

public struct TrainingSummary: Sendable {
    public var steps: Int
    public var tokens: Int
    public var reason: StopReason
    public var lastMetrics: [String: Double]
}

/// A run's metrics.jsonl: one object per logged step, its numeric fields (train_loss, val_loss,
/// tokens, ...); lines that are not JSON objects are skipped.
public enum MetricsLog {
    public static func read(_ path: String) throws -> [[String: Double]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            var out: [String: Double] = [:]
            for (k, v) in o { if let n = v as? NSNumber { out[k] = n.doubleValue } }
            return out
        }
    }
}

public final class Trainer<Data: TrainingData> {
    public typealias LossFunction = (Tape, BertModel, Data.Item, DropoutPlan) -> Tensor
    public typealias Evaluator = (BertModel) -> [String: Double]

    let model: BertModel
    let vocab: [String]
    var data: Data
    let options: TrainerOptions
    let runDir: String
    let loss: LossFunction
    let evaluate: Evaluator?
    let optimizer: AdamW
    public var log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }
    /// false: write no checkpoint (edits: the trained tensors belong to the edit, the base
    /// model is frozen and never saved).
    public var saveCheckpoints = true
    /// Called after every optimizer step with the step count (e.g. LoReFT's retraction).
    public var afterStep: ((Int) -> Void)? = nil
    /// Called with the numeric fields of every metrics line.
    public var onMetrics: ([String: Double]) -> Void = { _ in }
    /// The ranks of a data-parallel run (nil: this process alone).
    public var world: MPIWorld? = nil
    var leader: Bool { (world?.rank ?? 0) == 0 }
    var step = 0
    var tokens = 0
    var window = LogWindow()

    /// `parameters`: what the optimizer trains (default: every model parameter, no decay on
    /// biases and LayerNorm weights); may hold a subset of the model and an edit's tensors.
    public init(model: BertModel, vocab: [String], data: Data, options: TrainerOptions, runDir: String,
                parameters: ParameterGroup? = nil, loss: @escaping LossFunction, evaluate: Evaluator? = nil) {
        self.model = model; self.vocab = vocab; self.data = data; self.options = options
        self.runDir = runDir; self.loss = loss; self.evaluate = evaluate
        self.optimizer = parameters.map { AdamW($0, config: options.adamw) } ?? AdamW(model.params, config: options.adamw)
    }

    public var lastCheckpoint: String { runDir + "/last.h5" }
    var metricsPath: String { runDir + "/metrics.jsonl" }

    /// Continue from `last.h5`: weights, optimizer moments, step, tokens and data cursor.
    /// The options must equal the ones the run was started with.
    public func resume() throws {
        let ck = try Checkpoint.load(lastCheckpoint, moments: ["adam_m", "adam_v"])
        guard let t = ck.training else { throw TrainerError("\(lastCheckpoint): has no training state to resume from") }
        let state = try JSONDecoder().decode(TrainerState<Data.Cursor>.self, from: Foundation.Data(t.stateJSON.utf8))
        try Precision.checkResume(state.options.precision, options.precision, run: lastCheckpoint)
        guard state.options == options else {
            throw TrainerError("\(lastCheckpoint): --resume with different settings than the run was started with")
        }
        guard ck.model.config == model.config, ck.vocab == vocab else {
            throw TrainerError("\(lastCheckpoint): --resume with a different model config or vocabulary")
        }
        model.params.copyValues(from: ck.model.params)
        optimizer.restore(step: state.step, m: UnsafeBufferPointer(t.moments[0].values.buffer),
                          v: UnsafeBufferPointer(t.moments[1].values.buffer))
        step = state.step; tokens = state.tokens; data.cursor = state.cursor; window = state.window ?? LogWindow()
        if leader { try truncateMetrics(afterStep: step) }
        log("resumed from \(lastCheckpoint) at step \(step) (\(tokens) tokens)")
    }

    /// Drop metric lines written after the checkpoint we resume from (they will be redone).
    func truncateMetrics(afterStep s: Int) throws {
        guard let text = try? String(contentsOfFile: metricsPath, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Foundation.Data(line.utf8)) as? [String: Any],
                  let st = obj["step"] as? Int else { return false }
            return st <= s
        }
        try AtomicFile.write(Foundation.Data(kept.map { $0 + "\n" }.joined().utf8), to: metricsPath)
    }

    public func save(to path: String) throws {
        guard optimizer.params === model.params else {
            throw TrainerError("\(path): a checkpoint holds the model's optimizer state, but this parameter group starts with another store (set saveCheckpoints = false)")
        }
        let w = model.params.values.pointer
        for i in 0..<model.params.totalCount where !w[i].isFinite {
            throw TrainerError("weights are not finite after step \(step): stopping; last good checkpoint kept at \(lastCheckpoint)")
        }
        let state = TrainerState(step: step, tokens: tokens, cursor: data.cursor, options: options, window: window)
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys   // byte-identical state for identical runs
        let json = String(decoding: try enc.encode(state), as: UTF8.self)
        try Checkpoint.save(model, vocab: vocab,
                            training: TrainingSnapshot(stateJSON: json, moments: [("adam_m", optimizer.m), ("adam_v", optimizer.v)]),
                            to: path)
    }

    func appendMetrics(_ m: [(String, Any)]) throws {
        var parts: [String] = []
        for (k, v) in m {
            let val: String
            switch v {
            case let d as Double: val = d.isFinite ? String(format: "%.6g", d) : "null"
            case let f as Float: val = f.isFinite ? String(format: "%.6g", Double(f)) : "null"
            case let i as Int: val = String(i)
            default: val = "\"\(v)\""
            }
            parts.append("\"\(k)\":\(val)")
        }
        let line = "{" + parts.joined(separator: ",") + "}\n"
        if !FileManager.default.fileExists(atPath: metricsPath) { try AtomicFile.write(Foundation.Data(), to: metricsPath) }
        do {
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: metricsPath))
            defer { try? h.close() }
            try h.seekToEnd()
            try h.write(contentsOf: Foundation.Data(line.utf8))
        } catch {
            throw TrainerError("\(metricsPath): cannot append (\((error as NSError).localizedDescription))")
        }
    }

    /// Run until the step budget or the end of the data (or SIGINT). Returns why it stopped.
    /// The last metrics line of a run that was not interrupted has the validation metrics.
    public func run() throws -> TrainingSummary {
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        Interrupt.install()
        let progress = Progress(total: options.steps, from: step, log: log)
        var reason = StopReason.budget
        var last: [String: Double] = [:]
        var windowStart = Date(), lastLine: (step: Int, evaluated: Bool) = (-1, false)
        var lr: Float = 0, gradNorm = 0.0
        var reduceSeconds = 0.0   // data parallel: time in the gradient allreduce over the window (not resumed)
        var (pHidden, pAttn) = options.dropout(at: step)

        /// One metrics line for the window so far (train loss omitted when it holds no step).
        func logLine(evaluate evalNow: Bool) throws {
            let elapsed = Date().timeIntervalSince(windowStart)
            var m: [(String, Any)] = [("step", step), ("tokens", tokens), ("lr", lr), ("precision", (options.precision ?? .fp32).rawValue)]
            if window.steps > 0 {
                m += [("train_loss", window.lossSum / Double(window.steps)), ("grad_norm", gradNorm),
                      ("tokens_per_s", Double(window.tokens) / max(elapsed, 1e-9))]
                if world != nil { m += [("allreduce_s", reduceSeconds / Double(window.steps)), ("step_s", elapsed / Double(window.steps))] }
                last["train_loss"] = window.lossSum / Double(window.steps)
                last["tokens_per_s"] = Double(window.tokens) / max(elapsed, 1e-9)
            }
            m += [("hidden_dropout", pHidden), ("attention_dropout", pAttn)]
            if evalNow, let evaluate {
                for (k, v) in evaluate(model).sorted(by: { $0.key < $1.key }) { m.append((k, v)); last[k] = v }
            }
            try appendMetrics(m)
            onMetrics(Dictionary(m.compactMap { k, v in (v as? Double).map { (k, $0) } }, uniquingKeysWith: { a, _ in a }))
            progress.update(step: step, metrics: m)
            windowStart = Date(); window = LogWindow(); lastLine = (step, evalNow); reduceSeconds = 0
        }

        let tape = Tape(precision: options.precision ?? .fp32)
        let ranks = world?.size ?? 1, rank = world?.rank ?? 0
        var held = HeldGradients()
        stepLoop: while step < options.steps {
            tape.weightsChanged()
            optimizer.zeroGrads()
            (pHidden, pAttn) = options.dropout(at: step)
            var stepLoss = 0.0, stepTokens = 0, computed = 0
            for micro in 0..<options.accumulation {
                guard let item = try data.next() else {
                    reason = .endOfData
                    break stepLoop   // a partial accumulation is discarded: the step is not taken
                }
                stepTokens += data.tokens(in: item)
                // another rank's micro-batch, or this step already failed (every rank still reaches the reduction)
                guard micro % ranks == rank, stepLoss.isFinite else { continue }
                let plan = DropoutPlan(hidden: pHidden, attention: pAttn, seed: options.seed,
                                       step: UInt64(step * options.accumulation + micro))
                let l = loss(tape, model, item, plan)
                stepLoss += Double(l.scalar) / Double(options.accumulation)
                if computed > 0 { held.hold(optimizer.group) }
                if l.scalar.isFinite { tape.backward(l, seed: 1 / Float(options.accumulation)) } else { tape.reset() }
                if computed > 0 { held.addBack(to: optimizer.group) }
                computed += 1
            }
            var interrupted = Interrupt.requested
            if let world {
                let started = Date()
                for m in optimizer.group.members { try world.sum(m.params.grads.pointer, count: m.params.grads.count) }
                reduceSeconds += Date().timeIntervalSince(started)
                let r = try world.reduce([stepLoss, interrupted ? 1 : 0])
                stepLoss = r[0]; interrupted = r[1] > 0
            }
            guard stepLoss.isFinite else {
                throw TrainerError("loss is \(stepLoss) at step \(step + 1): stopping; last good checkpoint kept at \(lastCheckpoint)")
            }
            lr = options.schedule.lr(at: step)
            gradNorm = optimizer.update(lr: lr)
            guard gradNorm.isFinite else {
                throw TrainerError("gradient norm is \(gradNorm) at step \(step + 1): stopping; last good checkpoint kept at \(lastCheckpoint)")
            }
            step += 1; tokens += stepTokens
            afterStep?(step)
            window.lossSum += stepLoss; window.steps += 1; window.tokens += stepTokens

            let evalNow = (options.evalEvery > 0 && step % options.evalEvery == 0) || step == options.steps
            if leader && (step % options.logEvery == 0 || evalNow) { try logLine(evaluate: evalNow) }
            if saveCheckpoints && options.saveEvery > 0 && step % options.saveEvery == 0 && step < options.steps {
                try checkReplicas()
                if leader {
                    try save(to: runDir + String(format: "/step-%06d.h5", step))
                    try save(to: lastCheckpoint)
                }
            }
            if interrupted { reason = .interrupted; break }
        }
        // the data ended early: the run still ends with a validation line
        if leader && reason == .endOfData && !(lastLine.step == step && lastLine.evaluated) { try logLine(evaluate: true) }
        try checkReplicas()
        if saveCheckpoints && leader { try save(to: lastCheckpoint) }
        progress.finish()
        log("stopped after step \(step), \(tokens) tokens: \(reason.rawValue)" + (saveCheckpoints ? "; checkpoint \(lastCheckpoint)" : ""))
        return TrainingSummary(steps: step, tokens: tokens, reason: reason, lastMetrics: last)
    }
}

extension Trainer {
    /// Data parallel: every rank must hold the same weights (rank 0 saves them for all). Compared
    /// by a checksum of the weight bits, before each checkpoint and at the end.
    func checkReplicas() throws {
        guard let world else { return }
        var h = StableHash()
        h.add(UnsafeRawBufferPointer(start: model.params.values.pointer, count: model.params.totalCount * 4))
        let x = Double(h.value >> 12)   // exact in a Double
        let r = try world.reduce([x, -x], max: true)
        guard r[0] == -r[1] else {
            throw TrainerError("rank \(world.rank): the ranks' weights differ after step \(step) (the replicas diverged)")
        }
    }
}

extension Precision {
    /// A resumed run keeps the precision it was started with (nil: fp32).
    static func checkResume(_ was: Precision?, _ now: Precision?, run: String) throws {
        let was = was ?? .fp32, now = now ?? .fp32
        if was != now { throw TrainerError("\(run): trained with --precision \(was.rawValue); --resume cannot change it to \(now.rawValue)") }
    }
}

/// SIGINT sets a flag; the loop finishes its step, saves and stops.
public enum Interrupt {
    nonisolated(unsafe) static var flag: sig_atomic_t = 0
    public static var requested: Bool { flag != 0 }
    static func install() {
        flag = 0
        signal(SIGINT) { _ in Interrupt.flag = 1 }
    }
}

/// The gradients summed so far in a step, set aside while the next micro-batch's are computed
/// from zero, then added back: a process sums its micro-batches' gradients as the allreduce sums
/// the ranks', one float addition per weight per micro-batch. So one process with two micro-batches
/// and two ranks with one each add the same two gradients once (an addition is commutative): the
/// same bits. (Backpropagating the second micro-batch into the first one's sum would round each
/// of its many contributions against that sum instead.)
struct HeldGradients {
    var buffers: [[Float]] = []
    mutating func hold(_ group: ParameterGroup) {
        if buffers.isEmpty { buffers = group.members.map { [Float](repeating: 0, count: $0.params.grads.count) } }
        for (i, m) in group.members.enumerated() {
            buffers[i].withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: m.params.grads.pointer, count: m.params.grads.count) }
        }
        group.zeroGrads()
    }
    func addBack(to group: ParameterGroup) {
        for (i, m) in group.members.enumerated() {
            let g = m.params.grads.pointer
            buffers[i].withUnsafeBufferPointer { b in Parallel.forEach(b.count) { r in for j in r { g[j] += b[j] } } }
        }
    }
}
