import ArgumentParser
import Datasets
import Evaluators
import Foundation
import Training

struct CorpusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "corpus", abstract: "Generated corpora.", subcommands: [Synth.self, Facts.self])

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

    struct Facts: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "facts",
            abstract: "Put real ParaRel facts into the Wikipedia corpus at controlled exposure; write the corpus, its vocabulary and the probes.",
            discussion: """
                Each fact is stated --exposures times (0: a control, never stated) in its relation's training patterns, on lines \
                of their own at seeded random places of the Wikipedia stream (never in documents pretrain holds out); held-out \
                patterns never appear. --out gets corpus.txt (pretrain --corpus), vocab.txt (pretrain --vocab), probes.jsonl \
                (every fact in every pattern, with "split", "bucket" and "concept", for the knowledge evaluators' --probes), \
                facts.jsonl and facts.json (settings, counts, token share, sha256; written last). The same settings give the \
                same bytes; a directory holding anything else is never overwritten.
                """)
        @Option(help: "Facts, sampled stratified by (relation, object) from those whose object is one word piece.") var facts = FactsCorpusOptions().facts
        @Option(parsing: .upToNextOption, help: "Exposure buckets: statements per fact, increasing (0: never stated).") var exposures = [FactsCorpusOptions().exposures.map(String.init).joined(separator: ",")]
        @Option(help: "Share of each relation's patterns held out (at least 1 of 2 or more), never in the corpus.") var heldOut = FactsCorpusOptions().heldOut
        @Option(help: "Largest share of the corpus tokens the statements may take.") var maxShare = FactsCorpusOptions().maxShare
        @Option(help: "WordPiece vocabulary size (learned from the Wikipedia part).") var vocabSize = FactsCorpusOptions().vocabSize
        @Option(help: "Wikipedia lines to read, whole documents (0: all of <data root>/wiki_en).") var wikiLines = FactsCorpusOptions().wikiLines
        @Option(help: "pretrain's --val-fraction: its validation documents get no statement.") var valFraction = FactsCorpusOptions().valFraction
        @Option(help: "Seed for held-out patterns, sampling, buckets, patterns and places.") var seed = FactsCorpusOptions().seed
        @Option(help: "Data root (default: $DROPLAB_DATA, ../shared/data, ./data).") var dataDir: String?
        @Option(help: "Output directory.") var out = FactsCorpusOptions().out

        func run() throws {
            var o = FactsCorpusOptions()
            let parts = exposures.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            guard !parts.isEmpty, parts.allSatisfy({ Int($0) != nil }) else {
                throw OptionError(key: "exposures", "must be whole numbers like 0,1,4,16,64, got \(exposures.joined(separator: " "))")
            }
            o.facts = facts; o.exposures = parts.map { Int($0)! }; o.heldOut = heldOut; o.maxShare = maxShare; o.vocabSize = vocabSize
            o.wikiLines = wikiLines; o.valFraction = valFraction; o.seed = seed; o.dataDir = dataDir; o.out = out
            let (status, m) = try FactsCorpus.write(o, log: log)
            let c = m.counts
            print("corpus facts: \(out) \(status.rawValue): \(c["facts"]!) facts ("
                  + m.buckets.map { "\($0.facts) x\($0.exposure)" }.joined(separator: ", ") + "), "
                  + "\(c["statements"]!) statements = \(c["fact_tokens"]!) tokens, "
                  + String(format: "%.2f%%", 100 * m.shares["token_share"]!) + " of \(c["wiki_tokens"]! + c["fact_tokens"]!); "
                  + "\(c["probes"]!) probes (\(c["held_out_probes"]!) in held-out patterns); "
                  + "pretrain --corpus \(out)/\(m.pretrain.corpus) --vocab \(out)/\(m.pretrain.vocab) --tokens \(m.pretrain.trainTokens)"
                  + (m.pretrain.valFraction == PretrainOptions().valFraction ? "" : " --val-fraction \(m.pretrain.valFraction)"))
        }
    }
}
