import ArgumentParser
import Checkpoint
import Evaluators
import Foundation
import Recipes
import Training

extension EvalCommand {
    struct AcquisitionCmd: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "acquisition",
            abstract: "Fact acquisition curves of a pretraining run on `corpus facts`: accuracy at [MASK] per exposure bucket and pattern split at every saved checkpoint.",
            discussion: """
                Reads RUN's step-*.h5 (pretrain --save-every) and last.h5; writes RUN/acquisition.json and \
                RUN/acquisition.svg. Points already in acquisition.json (same options) are kept, so running it again as \
                the run goes on measures only the new checkpoints. With several runs and --table, also a markdown \
                table of every run's last point.
                """)
        @Argument(help: "Pretraining run directories.") var runs: [String]
        @Option(help: "Probes of `droplab corpus facts` (with \"bucket\" and \"split\").") var probes = AcquisitionOptions().probes
        @Option(help: "Probes per (bucket, split): a seeded sample, the same at every checkpoint (0: all).") var perGroup = AcquisitionOptions().perGroup
        @Option(help: "Sampling seed.") var seed = AcquisitionOptions().seed
        @Option(help: "Probes per forward pass.") var batch = AcquisitionOptions().batch
        @Option(help: "Write the last points of every run as a markdown table to this file.") var table: String?

        func run() throws {
            var o = AcquisitionOptions()
            o.probes = probes; o.perGroup = perGroup; o.seed = seed; o.batch = batch
            try o.validate()
            guard FileManager.default.fileExists(atPath: probes) else { throw OptionError(key: "probes", "\(probes): no such file") }
            var results: [(label: String, result: AcquisitionResult)] = []
            for run in runs {
                let path = run + "/acquisition.json"
                let old = (try? Data(contentsOf: URL(fileURLWithPath: path))).flatMap { try? JSONDecoder().decode(AcquisitionResult.self, from: $0) }
                let r = try Acquisition.run(runDir: run, options: o, done: old?.options == o ? old!.points : [], log: log)
                let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                try AtomicFile.write(try enc.encode(r), to: path)
                let label = (run as NSString).lastPathComponent
                try AtomicFile.write(Data(AcquisitionReport.svg(r, title: "Fact acquisition: \(label)").utf8), to: run + "/acquisition.svg")
                print("acquisition: \(r.points.count) checkpoints -> \(path), \(run)/acquisition.svg")
                results.append((label, r))
            }
            if let table { try AtomicFile.write(Data(AcquisitionReport.table(results).utf8), to: table); print("acquisition: table -> \(table)") }
        }
    }
}
