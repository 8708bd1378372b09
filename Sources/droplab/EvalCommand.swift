// `droplab eval NAME CHECKPOINT [--flag value ...]`: every evaluator of the registry, parsed
// from its one declaration (Recipes/EvalArguments.swift) and run as a job directory.

import ArgumentParser
import Foundation
import Recipes

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval",
        abstract: "Evaluate a checkpoint: droplab eval NAME CHECKPOINT [--flag value ...] (droplab eval NAME --help lists the flags).",
        discussion: "Evaluators: " + EvaluatorRegistry.names.joined(separator: ", ") + " (droplab eval NAME --help: what it "
            + "measures and its flags). A run writes the job directory <results>/<checkpoint's run>-<path hash>/NAME/: job.json "
            + "(the resolved options, the checkpoint and its sha256), result.json, the evaluator's own files, and done.json "
            + "(code version, machine, data digests).")

    /// `eval NAME ...` or `help eval NAME` for a registered evaluator: its help or its run; nil for anything else.
    static func registered(_ args: [String]) -> (evaluator: AnyEvaluator, arguments: [String], help: Bool)? {
        if args.count >= 3, args[0] == "help", args[1] == "eval", let e = EvaluatorRegistry.named(args[2]) { return (e, [], true) }
        guard args.count >= 2, args[0] == "eval", let e = EvaluatorRegistry.named(args[1]) else { return nil }
        let rest = Array(args.dropFirst(2))
        return (e, rest, rest.contains("--help") || rest.contains("-h"))
    }

    static func help(_ e: AnyEvaluator) -> String {
        let rows = e.flagHelp + [("--results <string>", "Results root directory. (default: results)"), ("-h, --help", "Show help information.")]
        let width = min(34, rows.map(\.flag.count).max() ?? 0)
        return (["\(e.abstract)", "", "USAGE: droplab eval \(e.name) <checkpoint> [--flag value ...]", "",
                 "ARGUMENTS:", "  <checkpoint>  Checkpoint (.h5).", "", "OPTIONS:"]
                + rows.map { "  " + $0.flag.padding(toLength: max(width, $0.flag.count), withPad: " ", startingAt: 0) + "  " + $0.text })
            .joined(separator: "\n")
    }

    static func run(_ e: AnyEvaluator, _ args: [String]) throws {
        guard let checkpoint = args.first, !checkpoint.hasPrefix("-") else {
            throw ValidationError("eval \(e.name) needs a checkpoint (.h5) before its flags")
        }
        var rest: [String] = [], results = "results", words = args.dropFirst().makeIterator()
        while let w = words.next() {                                    // --results: the last one given
            if w.hasPrefix("--results=") { results = String(w.dropFirst(10)) } else if w == "--results" {
                guard let v = words.next(), !v.hasPrefix("--") else { throw ValidationError("--results needs a value") }
                results = v
            } else { rest.append(w) }
        }
        let outcome = try EvalRun.run(e, checkpoint: checkpoint, arguments: rest, results: results, log: log)
        print(EvalRun.summary(e, outcome))
    }
}
