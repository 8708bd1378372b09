// Every subcommand with bad values (zero, negative, huge, non-numeric, missing file, directory
// instead of file, unwritable output): exit code != 0, no signal, exactly one line on stderr
// (`droplab: error: ...` naming the flag or file), and no file created or changed. Also: a
// full filesystem keeps the last good checkpoint bit for bit.

import Autograd
import BERT
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class BadInputTests: XCTestCase {
    /// Path -> contents of every file under `dir` (directories as "<dir>").
    func snapshot(_ dir: String) -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(atPath: dir)
        while let rel = e?.nextObject() as? String {
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir)
            out[rel] = isDir.boolValue ? Data("<dir>".utf8) : FileManager.default.contents(atPath: dir + "/" + rel)
        }
        return out
    }

    func testEveryCommandRejectsBadValuesWithOneLine() throws {
        let dir = try temporaryDirectory(self)
        let fm = FileManager.default
        _ = try TestData.wikiSample(bytes: 100_000, in: dir)
        try fm.copyItem(atPath: TestData.fixtureVocab, toPath: dir + "/vocab.txt")
        try fm.copyItem(atPath: TestData.repoRoot + "/Tests/EvaluatorsTests/Fixtures/blimp_model.h5", toPath: dir + "/ck.h5")
        try fm.createDirectory(atPath: dir + "/adir", withIntermediateDirectories: true)
        try "x\n".write(toFile: dir + "/file.txt", atomically: true, encoding: .utf8)
        // a checkpoint whose model has a single token type (SQuAD needs type 1)
        var config = try BertConfig(preset: "tiny", vocabSize: try String(contentsOfFile: TestData.fixtureVocab, encoding: .utf8)
            .split(separator: "\n").count, maxPositions: 64)
        config.typeVocabSize = 1
        let model = BertModel(config: config)
        model.initialize(seed: 1)
        try Checkpoint.save(model, vocab: try String(contentsOfFile: TestData.fixtureVocab, encoding: .utf8).split(separator: "\n").map(String.init),
                            to: dir + "/onetype.h5")

        // a checkpoint whose vocabulary differs from ck.h5's in one token, and a probe file
        let ck = try Checkpoint.load(dir + "/ck.h5")
        try Checkpoint.save(ck.model, vocab: Array(ck.vocab.dropLast()) + ["zzzz"], to: dir + "/othervocab.h5")
        try #"{"prompt": "paris is the capital of [MASK] .", "target": "france", "subject": "paris"}"#
            .write(toFile: dir + "/probes.jsonl", atomically: true, encoding: .utf8)

        // a checkpoint whose config asks for ~4 TB of parameters
        let huge = try HDF5File.create(dir + "/huge.h5")
        try huge.setAttribute("format", string: Checkpoint.format)
        try huge.setAttribute("format_version", int: Checkpoint.formatVersion)
        try huge.setAttribute("config", string: #"{"vocab_size": 1000000000, "hidden_size": 1024, "num_hidden_layers": 2, "num_attention_heads": 16, "intermediate_size": 4096}"#)
        try huge.setAttribute("head", string: "mlm")
        try huge.finish()

        let pre = ["pretrain", "--corpus", "corpus.txt", "--vocab", "vocab.txt", "--preset", "tiny", "--seq-len", "64", "--batch", "8",
                   "--tokens", "5000", "--val-fraction", "0.15", "--out", "run", "--cache-dir", "cache"]
        let mlm = ["eval", "mlm", "ck.h5", "--corpus", "corpus.txt", "--cache-dir", "cache", "--results", "results"]
        let blimp = ["eval", "blimp", "ck.h5", "--data-dir", TestData.sharedData, "--limit", "1", "--results", "results"]
        let squad = ["eval", "squad", "ck.h5", "--data-dir", TestData.sharedData, "--max-dev-examples", "2", "--max-train-examples", "2",
                     "--max-seq-len", "64", "--max-query-len", "16", "--doc-stride", "16", "--results", "results"]
        let synth = ["corpus", "synth", "--facts", "24", "--relations", "2", "--objects", "4", "--repetitions", "5", "--out", "syn"]
        let bench = ["bench", "--presets", "tiny", "--vocab-sizes", "100", "--dropouts", "0"]
        let explore = ["explore", "ck.h5", "--prompt", "paris is the capital of [MASK] .", "--target", "france", "--subject", "paris",
                       "--results", "results"]
        func probe(_ name: String) -> [String] { ["eval", name, "ck.h5", "--data-dir", TestData.sharedData, "--results", "results"] }
        func editor(_ name: String) -> [String] {
            ["eval", name, "ck.h5", "--data-dir", TestData.sharedData, "--corpus", "corpus.txt", "--cache-dir", "cache", "--results", "results"]
        }
        // (arguments, what the one line must mention)
        let cases: [([String], String)] = [
            (pre + ["--log-every", "0"], "--log-every"), (pre + ["--log-every", "-3"], "--log-every"),
            (pre + ["--batch", "0"], "--batch"), (pre + ["--batch", "1000000"], "--batch"), (pre + ["--batch", "abc"], "--batch"),
            (pre + ["--batch", "99999999999999999999999"], "--batch"), (pre + ["--seq-len", "2"], "--seq-len"),
            (pre + ["--seq-len", "100000"], "--seq-len"), (pre + ["--tokens", "0"], "--tokens"),
            (pre + ["--tokens", "9223372036854775807"], "--tokens"), (pre + ["--lr", "0"], "--lr"), (pre + ["--lr", "nan"], "--lr"),
            (pre + ["--dropout", "1"], "--dropout"), (pre + ["--mask-rate", "1"], "--mask-rate"), (pre + ["--mask-rate", "0"], "--mask-rate"),
            (pre + ["--salient", "missing.jsonl"], "missing.jsonl"), (pre + ["--salient", "corpus.txt"], "--salient"),
            (pre + ["--salient-mask-rate", "0.5"], "--salient-mask-rate"), (pre + ["--salient", "corpus.txt", "--salient-mask-rate", "0"], "--salient-mask-rate"), (pre + ["--attention-dropout", "-0.5"], "--attention-dropout"),
            (pre + ["--warmup", "-1"], "--warmup"), (pre + ["--accumulation", "0"], "--accumulation"),
            (pre + ["--vocab-size", "10"], "--vocab-size"), (pre + ["--save-every", "-5"], "--save-every"),
            (pre + ["--eval-every", "abc"], "--eval-every"), (pre + ["--val-sequences", "0"], "--val-sequences"),
            (pre + ["--val-fraction", "0"], "--val-fraction"), (pre + ["--early-dropout-steps", "-3"], "--early-dropout-steps"),
            (pre + ["--decay", "foo"], "--decay"), (pre + ["--beta2", "1"], "--beta2"), (pre + ["--adam-eps", "0"], "--adam-eps"),
            (pre + ["--init-range", "-0.02"], "--init-range"), (pre + ["--val-seq-len", "4"], "--val-seq-len"),
            (pre + ["--short-seq-len", "40"], "--short-seq-len"), (pre + ["--short-seq-fraction", "0"], "--short-seq-fraction"),
            (pre + ["--seq-len", "16"], "--short-seq-len"),
            (pre + ["--short-seq-len", "16", "--short-seq-fraction", "1"], "--short-seq-fraction"), (pre + ["--export-batches", "-1"], "--export-batches"), (pre + ["--preset", "huge"], "huge"), (pre + ["--weight-decay", "5"], "--weight-decay"),
            (pre + ["--corpus", "missing.txt"], "missing.txt"), (pre + ["--corpus", "adir"], "adir"),
            (pre + ["--vocab", "missing.txt"], "missing.txt"), (pre + ["--vocab", "adir"], "adir"),
            (pre + ["--out", "file.txt/run"], "file.txt"), (pre + ["--cache-dir", "file.txt/cache"], "file.txt"),
            (pre + ["--resume"], "last.h5"), (pre + ["--frobnicate"], "--frobnicate"),
            (mlm + ["--seq-len", "2"], "--seq-len"), (mlm + ["--seq-len", "x"], "--seq-len"), (mlm + ["--sequences", "0"], "--sequences"),
            (mlm + ["--sequences", "-1"], "--sequences"), (mlm + ["--val-fraction", "2"], "--val-fraction"),
            (mlm + ["--results", "file.txt/r"], "file.txt"), (["eval", "mlm", "missing.h5"], "missing.h5"),
            (["eval", "mlm", "adir"], "adir"), (["eval", "blimp", "huge.h5", "--data-dir", TestData.sharedData], "more than this machine's memory"), (["eval", "mlm", "corpus.txt"], "corpus.txt"),
            (blimp + ["--batch", "0"], "--batch"), (blimp + ["--batch", "-1"], "--batch"), (blimp + ["--batch", "10000000"], "--batch"),
            (blimp + ["--limit", "0"], "--limit"), (blimp + ["--data-dir", "adir"], "adir"), (blimp + ["--results", "file.txt/r"], "file.txt"),
            (["eval", "blimp", "missing.h5"], "missing.h5"),
            (squad + ["--batch", "0"], "--batch"), (squad + ["--epochs", "-1"], "--epochs"), (squad + ["--lr", "0"], "--lr"),
            (squad + ["--max-seq-len", "4"], "--max-seq-len"), (squad + ["--doc-stride", "0"], "--doc-stride"),
            (squad + ["--version", "3"], "--version"), (squad + ["--finetune-dropout", "1"], "--finetune-dropout"),
            (squad + ["--eval-batch", "0"], "--eval-batch"), (squad + ["--n-best", "0"], "--n-best"),
            (squad + ["--best-threshold"], "--best-threshold"), (squad + ["--log-every", "0"], "--log-every"),
            (squad + ["--train", "missing.json"], "missing.json"), (squad + ["--dev", "adir"], "adir"),
            (["eval", "squad", "onetype.h5", "--data-dir", TestData.sharedData, "--max-dev-examples", "2", "--epochs", "0",
              "--max-seq-len", "64", "--max-query-len", "16", "--doc-stride", "16", "--results", "results"], "type_vocab_size"),
            (["eval", "squad", "missing.h5"], "missing.h5"),
            (bench + ["--steps", "0"], "--steps"), (bench + ["--steps", "-1"], "--steps"), (bench + ["--batch", "0"], "--batch"),
            (bench + ["--seq-len", "2"], "--seq-len"), (bench + ["--presets", "huge"], "huge"), (bench + ["--dropouts", "1"], "--dropouts"),
            (pre + ["--precision", "fp16"], "--precision"), (squad + ["--precision", "bf32"], "--precision"),
            (bench + ["--precision", "int8"], "--precision"), (bench + ["--precision"], "--precision"),
            (["inspect", "missing.h5"], "missing.h5"), (["inspect", "adir"], "adir"), (["inspect", "corpus.txt"], "corpus.txt"),
            (["inspect"], "--system"), (["inspect", "ck.h5", "--system"], "--system"),
            (["eval", "acquisition", "adir", "--probes", "probes.jsonl", "--per-group", "-1"], "--per-group"),
            (["eval", "acquisition", "adir", "--probes", "missing.jsonl"], "missing.jsonl"),
            (["eval", "acquisition", "missing-run", "--probes", "probes.jsonl"], "missing-run"),
            (["eval", "acquisition", "adir", "--probes", "probes.jsonl"], "adir"),
            (["export", "hf", "missing.h5", "out"], "missing.h5"), (["export", "hf", "ck.h5", "file.txt"], "file.txt"),
            (["tokenizer", "train", "--vocab-size", "0", "corpus.txt", "--out", "v.txt"], "--vocab-size"),
            (["tokenizer", "train", "missing.txt", "--out", "v.txt"], "missing.txt"),
            (["tokenizer", "train", "corpus.txt", "--out", "file.txt/v.txt"], "file.txt"),
            (pre + ["--seed", "-1"], "--seed"), (squad + ["--nBest"], "--nBest"),
            (pre + ["--init-seed", "-1"], "--init-seed"), (pre + ["--data-seed", "abc"], "--data-seed"),
            (pre + ["--dropout-seed", "99999999999999999999999"], "--dropout-seed"), (pre + ["--dropout-seed"], "--dropout-seed"),
            (["tokenizer", "encode", "--vocab", "missing.txt", "hello"], "missing.txt"),
            (["recipe", "run", "missing.toml"], "missing.toml"), (["recipe", "run", "adir"], "adir"),
            (pre + ["--threads", "0"], "--threads"), (pre + ["--threads", "-2"], "--threads"), (pre + ["--threads", "x"], "--threads"),
            (["recipe", "run", "missing.toml", "--threads", "0"], "--threads"), (["recipe", "run", "adir", "--threads", "99999"], "--threads"),
            (["recipe", "run", TestData.repoRoot + "/recipes/smoke.toml", "--data-parallel"], "--data-parallel"),
            (["report", "missing.toml"], "missing.toml"),
            (["report", TestData.repoRoot + "/recipes/synthetic.toml", "--jobs", "missing"], "--jobs"), (["frobnicate"], "frobnicate"),
            // knowledge evaluators: probe flags, each evaluator's own flags, checkpoint and data
            (probe("consistency") + ["--limit", "0"], "--limit"), (probe("consistency") + ["--batch", "0"], "--batch"),
            (probe("consistency") + ["--probes", "missing.jsonl"], "missing.jsonl"), (probe("lens") + ["--probes", "adir"], "adir"),
            (probe("lens") + ["--relations", "P999"], "--relations"), (["eval", "lens", "missing.h5"], "missing.h5"),
            (probe("ig") + ["--steps", "0"], "--steps"), (probe("ig") + ["--site", "ffn.post"], "--site"),
            (probe("ig") + ["--alphas", "2"], "--alphas"), (probe("ig") + ["--layers", "9"], "--layers"),
            (probe("ig") + ["--check-steps", "0"], "--check-steps"),
            (probe("kn") + ["--threshold", "2"], "--threshold"), (probe("kn") + ["--site", "block"], "--site"),
            (probe("trace") + ["--samples", "0"], "--samples"), (probe("trace") + ["--kinds", "foo"], "--kinds"),
            (probe("interchange") + ["--positions", "all"], "--positions"), (probe("interchange") + ["--pairs", "0"], "--pairs"),
            (probe("mend") + ["--rank", "0"], "--rank"), (probe("mend") + ["--train-share", "1"], "--train-share"),
            (probe("mend") + ["--layers", "9"], "--layers"),
            (editor("rome") + ["--split", "test"], "--split"), (editor("rome") + ["--cov-samples", "0"], "--cov-samples"),
            (editor("rome") + ["--layer", "9"], "--layer"), (editor("rome") + ["--layer", "1"], "last layer"),
            (editor("memit") + ["--layers", "0", "1"], "--layers"), (editor("rome") + ["--pararel", "--probes", "probes.jsonl"], "--pararel"),
            (editor("rome") + ["--relations", "P36"], "--relations"), (editor("memit") + ["--probes", "missing.jsonl"], "missing.jsonl"), (editor("rome") + ["--known-only", "maybe"], "--known-only"),
            (editor("rome") + ["--pararel", "--relations", "P999"], "P999"), (editor("memit") + ["--counts", "0"], "--counts"),
            (editor("memit") + ["--lambda", "-1"], "--lambda"), (["eval", "rome", "missing.h5"], "missing.h5"),
            (editor("rome") + ["--objective", "memit"], "--objective"), (editor("memit") + ["--stop-loss", "0"], "--stop-loss"),
            (editor("rome") + ["--trace-samples", "0"], "--trace-samples"), (editor("rome") + ["--trace-noise", "-1"], "--trace-noise"),
            (editor("rome") + ["--trace-window", "0"], "--trace-window"), (editor("rome") + ["--prefix-pool", "0"], "--prefix-pool"),
            (probe("kn") + ["--kmeans-iterations", "0"], "--kmeans-iterations"),
            (probe("bmask") + ["--min-steps", "-1"], "--min-steps"), (probe("reft") + ["--last-layer-position", "head"], "--last-layer-position"),
            (probe("reft") + ["--places", "1.5:mask"], "--places"), (probe("mend") + ["--lr-lr", "0"], "--lr-lr"),
            (probe("mend") + ["--rows", "all"], "--rows"), (probe("consistency") + ["--known-only", "maybe"], "--known-only"),
            (probe("lora") + ["--ranks", "0"], "--ranks"), (probe("bmask") + ["--epochs", "0"], "--epochs"),
            (probe("reft") + ["--held-out", "1"], "--held-out"), (probe("ft") + ["--lr", "0"], "--lr"),
            // explore: its flags, the trace and kn flags it shares, prompts, checkpoints, output
            (explore + ["--samples", "0"], "--samples"), (explore + ["--noise", "-1"], "--noise"), (explore + ["--window", "0"], "--window"), (explore + ["--kinds", "foo"], "--kinds"),
            (explore + ["--steps", "0"], "--steps"), (explore + ["--threshold", "2"], "--threshold"), (explore + ["--site", "block"], "--site"),
            (explore + ["--alphas", "2"], "--alphas"), (explore + ["--top", "0"], "--top"), (explore + ["--promoted", "-1"], "--promoted"), (explore + ["--max-prompts", "0"], "--max-prompts"),
            (explore + ["--batch", "0"], "--batch"), (explore + ["--select", "paris"], "--select"), (explore + ["--probes", "probes.jsonl"], "--probes"),
            (explore + ["--target", "zzzqqq"], "--target"), (explore + ["--target", "two words"], "--target"),
            (["explore", "ck.h5", "--prompt", "no mask here"], "[MASK]"), (["explore", "ck.h5", "--prompt", "a [MASK] b", "--subject", "paris"], "paris"),
            (["explore", "ck.h5", "--probes", "probes.jsonl", "--target", "france"], "--target"),
            (["explore", "ck.h5", "--probes", "probes.jsonl", "--select", "berlin"], "--select"),
            (["explore", "ck.h5", "--probes", "missing.jsonl"], "missing.jsonl"),
            (["explore", "ck.h5", "ck.h5", "ck.h5", "--probes", "probes.jsonl"], "one or two checkpoints"),
            (["explore", "ck.h5", "othervocab.h5", "--probes", "probes.jsonl"], "othervocab.h5"),
            (["explore", "missing.h5", "--probes", "probes.jsonl"], "missing.h5"), (["explore", "adir", "--probes", "probes.jsonl"], "adir"),
            (explore + ["--out", "adir"], "adir"), (explore + ["--out", "file.txt/page.html"], "file.txt"),
            (explore + ["--results", "file.txt/r"], "file.txt"),
            // predict
            (["predict", "missing.h5", "a [MASK] b"], "missing.h5"), (["predict", "ck.h5", "no mask here"], "[MASK]"),
            (["predict", "ck.h5", "a [MASK] b [MASK]"], "[MASK]"), (["predict", "ck.h5", "a [MASK] b", "--top", "0"], "--top"),
            (["predict", "ck.h5"], "sentence"),
            // the synthetic corpus: every flag's range, and an output directory holding other files
            (synth + ["--facts", "0"], "--facts"), (synth + ["--facts", "14"], "--facts"), (synth + ["--relations", "9"], "--relations"),
            (synth + ["--objects", "1"], "--objects"), (synth + ["--templates", "0"], "--templates"),
            (synth + ["--templates", "9"], "--templates"), (synth + ["--held-out-templates", "6"], "--held-out-templates"),
            (synth + ["--held-out-templates", "-1"], "--held-out-templates"), (synth + ["--repetitions", "0"], "--repetitions"),
            (synth + ["--repetitions", "1000000"], "--repetitions"), (synth + ["--filler", "1"], "--filler"),
            (synth + ["--filler", "-0.1"], "--filler"), (synth + ["--seed", "-1"], "--seed"), (synth + ["--out", "."], "--out"),
            (synth + ["--out", "file.txt/syn"], "file.txt"),
            // a mistyped subcommand, run or asked for help: its closest name
            (["eval", "lense", "ck.h5"], "did you mean 'lens'?"), (["help", "eval", "lense"], "did you mean 'lens'?"),
            (["evl", "lens", "ck.h5"], "did you mean 'eval'?"), (["recipe", "rn", "paper"], "did you mean 'run'?"),
        ]
        // bf16 on a CPU without AVX512-BF16 (made so on every machine by capping oneDNN at AVX2)
        let noBF16 = ["ONEDNN_MAX_CPU_ISA": "AVX2"]
        let machineCases: [([String], String, [String: String])] = cases.map { ($0.0, $0.1, [:]) } + [
            (pre + ["--precision", "bf16"], "--precision bf16 needs a CPU with AVX512-BF16", noBF16),
            (squad + ["--precision", "bf16"], "--precision bf16 needs a CPU with AVX512-BF16", noBF16),
            (bench + ["--precision", "bf16"], "--precision bf16 needs a CPU with AVX512-BF16", noBF16),
        ]
        let before = snapshot(dir)
        var table: [String] = []
        for (args, needle, environment) in machineCases {
            let r = try runDroplab(args, cwd: dir, environment: environment)
            let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
            let shown = args.joined(separator: " ")
            table.append("| `droplab \(shown.replacingOccurrences(of: TestData.sharedData, with: "DATA"))` | \(r.status) | \(lines.first ?? "") |")
            XCTAssertFalse(r.signaled, "\(shown): killed by signal \(r.status)")
            XCTAssertNotEqual(r.status, 0, "\(shown): exit 0")
            XCTAssertEqual(lines.count, 1, "\(shown): stderr has \(lines.count) lines:\n\(r.stderr)")
            XCTAssertTrue(lines.first?.hasPrefix("droplab: error: ") == true && lines.first!.contains(needle),
                          "\(shown): expected one error line mentioning \(needle): \(r.stderr)")
            let after = snapshot(dir)
            XCTAssertEqual(Set(after.keys), Set(before.keys), "\(shown): files created or removed")
            for (k, v) in before where after[k] != v { XCTFail("\(shown): \(k) changed") }
        }
        if ProcessInfo.processInfo.environment["BAD_INPUT_TABLE"] == "1" { print(table.joined(separator: "\n")) }
    }

    /// A checkpoint save that meets a full filesystem (a small tmpfs, filled up after a first
    /// run) fails with one error line and leaves the previous last.h5 bit for bit.
    func testFullFilesystemKeepsLastGoodCheckpoint() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 300_000, in: dir)
        let mount = dir + "/small"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        func tool(_ path: String, _ args: [String]) -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: path)
            p.arguments = args
            p.standardError = FileHandle.nullDevice
            do { try p.run() } catch { return -1 }
            p.waitUntilExit()
            return p.terminationStatus
        }
        guard tool("/bin/mount", ["-t", "tmpfs", "-o", "size=32m", "tmpfs", mount]) == 0 else {
            throw XCTSkip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
        }
        addTeardownBlock { _ = tool("/bin/umount", [mount]) }
        let run = mount + "/run"
        let args = ["pretrain", "--corpus", corpus, "--vocab", TestData.fixtureVocab, "--preset", "tiny", "--seq-len", "64",
                    "--batch", "8", "--tokens", String(3 * 8 * 64), "--val-fraction", "0.15", "--val-sequences", "8",
                    "--cache-dir", dir + "/cache", "--out", run]
        let first = try runDroplab(args)
        XCTAssertEqual(first.status, 0, first.stderr)
        let good = try Data(contentsOf: URL(fileURLWithPath: run + "/last.h5"))
        // leave half a checkpoint of free space, then save again (a resume at the end saves last.h5)
        let free = (try FileManager.default.attributesOfFileSystem(forPath: mount)[.systemFreeSize] as! NSNumber).intValue
        XCTAssertGreaterThan(free, good.count)
        try Data(count: free - good.count / 2).write(to: URL(fileURLWithPath: mount + "/filler"))
        let r = try runDroplab(args + ["--resume"])
        XCTAssertFalse(r.signaled)
        assertOneLineError(r, contains: [run + "/last.h5", "No space left on device"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: run + "/last.h5")), good, "last.h5 changed")
        let files = try FileManager.default.contentsOfDirectory(atPath: run)
        XCTAssertFalse(files.contains { $0.contains(".tmp-") }, "temporary file left: \(files)")
    }
}
