// droplab command line: subcommands only; the work happens in the library targets.

import ArgumentParser
import Autograd
import Checkpoint
import Foundation
import Recipes
import Training

@main
struct Droplab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "droplab",
        abstract: "Pretrain small BERTs at several dropout settings and evaluate what dropout does.",
        subcommands: [PretrainCommand.self, CorpusCommand.self, EvalCommand.self, ExploreCommand.self, PredictCommand.self, RecipeCommand.self, ReportCommand.self, InspectCommand.self, ExportCommand.self, TokenizerCommand.self, BenchCommand.self])

    /// Every failure, from parsing or from the work, is one line on stderr
    /// (`droplab: error: ...`, never a usage block) and a non-zero exit; help goes to stdout.
    static func main() {
        Machine.ensureBestBLASKernel()
        do {
            let args = Array(CommandLine.arguments.dropFirst())
            if let e = EvalCommand.registered(joiningNegativeValues(args)) {
                if e.help { print(EvalCommand.help(e.evaluator)); Foundation.exit(0) }
                try EvalCommand.run(e.evaluator, e.arguments)
                MPIWorld.finish()
                return
            }
            try checkSubcommandNames(args)
            var command = try parseAsRoot(joiningNegativeValues(args))
            try command.run()
            MPIWorld.finish()
        } catch {
            let code = exitCode(for: error)
            if code == .success { print(fullMessage(for: error)); Foundation.exit(0) }
            let message = Self.message(for: error).split(whereSeparator: \.isNewline)
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("Help:") && !$0.hasPrefix("Usage:") }
                .joined(separator: " ")
            if !message.isEmpty { log("droplab: error: " + message) }
            Foundation.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }

    /// A word where a command group expects one of its subcommands (`droplab eval lense`,
    /// `droplab help eval lense`) that names none: an error with the closest name, instead of
    /// "unexpected arguments" or the group's help.
    static func checkSubcommandNames(_ args: [String]) throws {
        var command: ParsableCommand.Type = Droplab.self
        var path = ["droplab"]
        for word in args.first == "help" ? Array(args.dropFirst()) : args {
            let c = command.configuration
            let names = c.subcommands.map { $0._commandName } + (command == EvalCommand.self ? EvaluatorRegistry.names : [])
            guard !names.isEmpty, c.defaultSubcommand == nil, !word.hasPrefix("-"), word != "help" else { return }
            guard let i = names.firstIndex(of: word), i < c.subcommands.count else {
                if names.contains(word) { return }          // a registered evaluator (EvalCommand.registered)
                throw ValidationError("'\(word)' is not a subcommand of '\(path.joined(separator: " "))'"
                    + (Suggest.closest(word, among: names).map { "; did you mean '\($0)'?" } ?? "")
                    + " (known: \(names.joined(separator: ", ")))")
            }
            command = c.subcommands[i]
            path.append(word)
        }
    }

    /// `--flag -3` -> `--flag=-3`: a negative number after an option is its value (the parser
    /// would take it for an option), so its range check can name the flag.
    static func joiningNegativeValues(_ args: [String]) -> [String] {
        var out: [String] = []
        for a in args {
            if let prev = out.last, prev.hasPrefix("--"), !prev.contains("="), a.hasPrefix("-"), Double(a) != nil {
                out[out.count - 1] = prev + "=" + a
            } else {
                out.append(a)
            }
        }
        return out
    }
}

func log(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }

/// `--threads`: the kernel threads of this process (nil: the default, see Parallel.threads).
func useThreads(_ n: Int?) throws {
    guard let n else { return }
    try Check.range(n, 1...1024, "threads")
    Parallel.use(threads: n)
}

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect",
        abstract: "Print a checkpoint's config, training state and every tensor's shape and norm (--system: this machine's CPU and kernels).")
    @Argument(help: "Checkpoint (.h5).") var checkpoint: String?
    @Flag(help: "Print the CPU, its vector ISA, the OpenBLAS kernel in use (and where it came from), oneDNN's ISA and bf16 support.") var system = false

    func validate() throws {
        try Check.that((checkpoint != nil) != system, nil, system ? "inspect --system takes no checkpoint" : "inspect needs a checkpoint (or --system)")
    }

    func run() throws {
        if system { for (k, v) in Machine.summary { print("\(k): \(v)") } } else { print(try Checkpoint.describe(checkpoint!)) }
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Export a checkpoint.",
                                                    subcommands: [HF.self])
    struct HF: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "hf",
            abstract: "Write config.json, model.safetensors and vocab.txt for transformers' from_pretrained.")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @Argument(help: "Output directory.") var dir: String
        func run() throws {
            try HFExport.export(checkpoint, to: dir)
            log("exported \(checkpoint) to \(dir) (check with: python tools/check_hf_parity.py \(dir))")
        }
    }
}
