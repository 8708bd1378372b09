import ArgumentParser
import Evaluators
import Foundation

struct CorpusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "corpus", abstract: "Generated corpora.", subcommands: [Synth.self])

    struct Synth: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "synth",
            abstract: "Write a seeded synthetic corpus of facts, its probes (JSONL) and CounterFact cases.",
            discussion: """
                --out gets corpus.txt (for pretrain --corpus), probes.jsonl (for the knowledge evaluators' --probes; \
                "split" marks the held-out templates, which never appear in the corpus), counterfact/counterfact-edit.json \
                (for eval rome/memit --data-dir <out>) and synthetic.json (settings, counts, sha256). The same settings \
                give the same bytes; a directory holding anything else is never overwritten.
                """)
        @Option(help: "Facts (subject, relation, object); each subject gets one fact per relation.") var facts = SynthOptions().facts
        @Option(help: "Relations, the first N of: \(SyntheticFacts.relations.map(\.name).joined(separator: ", ")).") var relations = SynthOptions().relations
        @Option(help: "Distinct objects per relation.") var objects = SynthOptions().objects
        @Option(help: "Paraphrase templates per relation (held-out ones included).") var templates = SynthOptions().templates
        @Option(help: "Templates per relation that never appear in the corpus.") var heldOutTemplates = SynthOptions().heldOutTemplates
        @Option(help: "Statements of each fact in the corpus (spread over the training templates).") var repetitions = SynthOptions().repetitions
        @Option(help: "Share of the corpus's sentences that are filler.") var filler = SynthOptions().filler
        @Option(help: "Seed for names, objects, held-out templates and sentence order.") var seed = SynthOptions().seed
        @Option(help: "Output directory.") var out = SynthOptions().out

        func run() throws {
            var o = SynthOptions()
            o.facts = facts; o.relations = relations; o.objects = objects; o.templates = templates
            o.heldOutTemplates = heldOutTemplates; o.repetitions = repetitions; o.filler = filler; o.seed = seed; o.out = out
            let (status, m) = try SyntheticFacts.write(o, log: log)
            let c = m.counts
            print("corpus synth: \(out) \(status.rawValue): \(c["facts"]!) facts (\(c["subjects"]!) subjects x \(c["relations"]!) relations, "
                  + "\(c["objects"]!) objects), \(c["statements"]!) statements + \(c["filler_sentences"]!) filler sentences "
                  + "(\(c["words"]!) words), \(c["probes"]!) probes (\(c["held_out_probes"]!) held out), \(c["counterfact_cases"]!) CounterFact cases")
        }
    }
}
