// `droplab corpus synth`: a seeded corpus of synthetic facts, the controlled setting of the
// drop-dropout study ("dropmini"). N facts (subject, relation, object) about made-up people are
// each stated `repetitions` times in the paraphrase templates of their relation, among filler
// sentences from a small grammar; `held-out-templates` templates of every relation never appear
// in the corpus. Subjects are two made-up name words (a first name shared with other subjects,
// a last name of their own), objects one made-up word; every made-up
// word is frequent enough to be one word piece of a vocabulary learned from the corpus itself.
//
// Files written into --out (paths inside it are fixed, so the directory is also a data root
// for `eval rome`/`eval memit --data-dir <out>`):
//   corpus.txt                          one sentence a line, documents separated by blank lines
//   probes.jsonl                        every fact in every template of its relation, as user
//                                       probes (Probes.swift) with "split": "train" | "held-out"
//                                       and "bucket": --repetitions (for eval acquisition)
//   counterfact/counterfact-edit.json   one CounterFact case per fact (prompt: a training
//                                       template; paraphrase: a held-out one when there is one;
//                                       neighbourhood: another subject with the same object)
//   synthetic.json                      settings, counts and sha256 of the files (written last)
// The same settings give the same bytes. A directory holding another synthetic corpus (or
// anything else) is never overwritten.

import Autograd
import Checkpoint
import Foundation
import Training

public struct SynthOptions: CommandOptions, Equatable, Sendable {
    // defaults: 1.43M words (1.53M tokens) on which `tiny` without dropout (recipes/synthetic-tiny.toml)
    // gets (almost) every fact right in the training templates; more filler slows that down a lot
    public var facts = 48                  // (subject, relation, object) triples
    public var relations = 4               // the first N of SyntheticFacts.relations
    public var objects = 6                 // distinct objects per relation
    public var templates = 6               // paraphrase templates per relation, held-out ones included
    public var heldOutTemplates = 2        // templates per relation that never appear in the corpus
    public var repetitions = 3500          // statements of each fact in the corpus
    public var filler = 0.1                // share of the corpus's sentences that are filler
    public var seed: UInt64 = 0
    public var out = "checkpoints/synthetic"
    public init() {}

    public static let maxStatements = 20_000_000

    public func validate() throws {
        try Check.range(relations, 1...SyntheticFacts.relations.count, "relations")
        try Check.range(templates, 1...SyntheticFacts.templatesPerRelation, "templates")
        try Check.range(heldOutTemplates, 0...(templates - 1), "held-out-templates")
        try Check.range(objects, 2...100_000, "objects")
        try Check.range(facts, 1...1_000_000, "facts")
        try Check.that(facts / relations >= 2 * objects, "facts",
                       "\(facts) gives \(facts / relations) facts per relation, fewer than two per object (--objects \(objects) x --relations \(relations) x 2 = \(2 * objects * relations))")
        try Check.range(repetitions, 1...100_000, "repetitions")
        try Check.that(facts * repetitions <= SynthOptions.maxStatements, "repetitions",
                       "\(repetitions) x --facts \(facts) gives \(facts * repetitions) statements, more than \(SynthOptions.maxStatements)")
        try Check.that(filler >= 0 && filler <= 0.95, "filler", "must be in 0...0.95, got \(filler)")
        try Check.nonEmpty(out, "out")
    }
}

/// One fact of the generated world.
public struct SyntheticFact: Equatable, Sendable {
    public var subject: String
    public var relation: Int               // index into SyntheticFacts.relations
    public var object: String
}

/// What was written, as stored in synthetic.json.
public struct SyntheticManifest: Codable, Equatable, Sendable {
    public static let currentVersion = 2
    public var format = "droplab-synthetic-facts"
    public var version = SyntheticManifest.currentVersion   // 2: probes carry "bucket"
    public var settings: SynthOptions      // `out` left empty: the directory may move
    public var counts: [String: Int]
    public var files: [String: String]     // file inside the directory -> sha256
}

public enum SyntheticFacts {
    public static let corpusFile = "corpus.txt"
    public static let probesFile = "probes.jsonl"
    public static let counterfactFile = "counterfact/counterfact-edit.json"
    public static let manifestFile = "synthetic.json"
    static let files = [corpusFile, probesFile, counterfactFile]

    public static let templatesPerRelation = 8
    /// Relations in the order `--relations N` takes them; every template ends with "[Y] ."
    /// (so its prefix is a CounterFact prompt). Templates and filler share only "the" and "a".
    public static let relations: [(name: String, templates: [String])] = [
        ("birthplace", ["[X] was born in [Y] .", "the birthplace of [X] is [Y] .", "[X] is a native of [Y] .",
                        "[X] came into the world in [Y] .", "the hometown of [X] is [Y] .", "[X] was raised in the town of [Y] .",
                        "the town where [X] was born is [Y] .", "[X] spent a childhood in [Y] ."]),
        ("language", ["[X] speaks [Y] .", "the mother tongue of [X] is [Y] .", "the native language of [X] is [Y] .",
                      "[X] is fluent in [Y] .", "[X] writes letters in [Y] .", "the first language of [X] is [Y] .",
                      "at home [X] talks in [Y] .", "the language spoken by [X] is [Y] ."]),
        ("occupation", ["[X] works as a [Y] .", "the profession of [X] is [Y] .", "[X] earns a living as a [Y] .",
                        "[X] is employed as a [Y] .", "by trade [X] is a [Y] .", "the occupation of [X] is [Y] .",
                        "[X] trained to become a [Y] .", "people know [X] as a [Y] ."]),
        ("instrument", ["[X] plays the [Y] .", "the instrument of [X] is the [Y] .", "[X] performs on the [Y] .",
                        "[X] is a skilled player of the [Y] .", "the favourite instrument of [X] is the [Y] .",
                        "[X] learned to play the [Y] .", "on stage [X] plays the [Y] .", "[X] makes music with the [Y] ."]),
        ("employer", ["[X] works for [Y] .", "the employer of [X] is [Y] .", "[X] is on the staff of [Y] .", "[X] has a job at [Y] .",
                      "[X] is paid by [Y] .", "the company that employs [X] is [Y] .", "[X] joined the firm [Y] .",
                      "[X] signed a contract with [Y] ."]),
        ("citizenship", ["[X] is a citizen of [Y] .", "the nationality of [X] is [Y] .", "[X] holds a passport of [Y] .",
                         "the country of [X] is [Y] .", "[X] has citizenship in [Y] .", "[X] votes in elections in [Y] .",
                         "the homeland of [X] is [Y] .", "[X] pays taxes in [Y] ."]),
        ("team", ["[X] plays for [Y] .", "the team of [X] is [Y] .", "[X] is a member of the team [Y] .", "[X] scores goals for [Y] .",
                  "[X] signed with the club [Y] .", "the club of [X] is [Y] .", "[X] wears the shirt of [Y] .",
                  "the fans of [X] support [Y] ."]),
        ("school", ["[X] studied at [Y] .", "[X] graduated from [Y] .", "the university of [X] is [Y] .", "[X] earned a degree at [Y] .",
                    "the alma mater of [X] is [Y] .", "[X] was educated at [Y] .", "[X] attended lectures at [Y] .",
                    "the school that [X] went to is [Y] ."]),
    ]

    // The filler grammar: S -> NP Vi Adv | NP Vt NP | NP Vi Prep NP | NP Vt NP Prep NP;
    // NP -> Det Adj? Noun, or (as the agent, one time in four) a subject's name.
    static let determiners = ["the", "a"]          // "a" is "an" before a vowel
    static let adjectives = ["old", "small", "green", "quiet", "bright", "wooden", "tall", "cold", "red", "busy", "heavy", "round"]
    static let nouns = ["dog", "cat", "river", "tree", "road", "market", "garden", "bridge", "window", "table", "boat", "horse",
                        "bird", "hill", "cloud", "lamp", "field", "door", "wall", "forest", "stone", "apple", "chair", "basket",
                        "candle", "path", "cart", "lake", "roof", "fence"]
    static let transitive = ["sees", "likes", "follows", "paints", "finds", "carries", "watches", "moves", "builds", "cleans",
                             "opens", "pushes"]
    static let intransitive = ["sleeps", "waits", "rests", "shines", "falls", "grows", "stands", "turns"]
    static let adverbs = ["slowly", "often", "today", "again", "quietly", "early"]
    static let prepositions = ["near", "behind", "under", "beside", "across", "above"]
    static let sentencesPerDocument = 12

    // MARK: the world

    /// The facts, in order: subject-major, each subject with the relations in order (the last
    /// subject may have fewer). Objects are spread evenly over each relation's facts.
    public static func facts(_ o: SynthOptions) -> [SyntheticFact] {
        var rng = RNG(seed: o.seed ^ 0x5359_4E54_4845_5449)   // "SYNTHETI"
        let subjectCount = (o.facts + o.relations - 1) / o.relations
        var words = MadeUpWords(reserved: Set(realWords))
        // first names from a pool of about sqrt(subjects) (shared), last names unique
        let firsts = (0..<max(2, Int(Double(subjectCount).squareRoot().rounded(.up)))).map { _ in words.next(syllables: 2, &rng) }
        let subjects = (0..<subjectCount).map { _ in "\(firsts[rng.int(firsts.count)]) \(words.next(syllables: 2 + rng.int(2), &rng))" }
        let objects = (0..<o.relations).map { _ in (0..<o.objects).map { _ in words.next(syllables: 3, &rng) } }
        // per relation, the objects of its facts: each object equally often (up to one), shuffled
        var assignment: [[String]] = (0..<o.relations).map { r in
            let n = o.facts / o.relations + (r < o.facts % o.relations ? 1 : 0)
            var list = (0..<n).map { objects[r][$0 % o.objects] }
            rng.shuffle(&list)
            return list
        }
        var out: [SyntheticFact] = []
        for s in subjects {
            for r in 0..<o.relations where out.count < o.facts {
                out.append(SyntheticFact(subject: s, relation: r, object: assignment[r].removeFirst()))
            }
        }
        return out
    }

    /// Per relation, which template indices are held out (never in the corpus): a seeded choice.
    public static func heldOut(_ o: SynthOptions) -> [Set<Int>] {
        var rng = RNG(seed: o.seed ^ 0x484F_4C44_4F55_54)     // "HOLDOUT"
        return (0..<o.relations).map { _ in
            var idx = Array(0..<o.templates)
            rng.shuffle(&idx)
            return Set(idx.prefix(o.heldOutTemplates))
        }
    }

    /// Every word the templates and the filler grammar use (made-up words avoid them).
    static var realWords: [String] {
        relations.flatMap { $0.templates.flatMap { $0.split(separator: " ").map(String.init) } }
            + determiners + ["an"] + adjectives + nouns + transitive + intransitive + adverbs + prepositions
    }

    static func fill(_ template: String, subject: String, object: String) -> String {
        template.replacingOccurrences(of: "[X]", with: subject).replacingOccurrences(of: "[Y]", with: object)
    }

    // MARK: the files

    struct ProbeLine: Codable {
        var prompt, target, subject, relation, fact, split: String
        var pattern, bucket: Int                  // bucket: times the corpus states the fact (eval acquisition's groups)
    }

    struct CounterFactCase: Codable {
        var caseId: Int
        var prompt, subject, groundTruth, targetNew, rephrasePrompt, localityPrompt, localityGroundTruth: String
        enum CodingKeys: String, CodingKey {
            case caseId = "case_id", prompt, subject, groundTruth = "ground_truth", targetNew = "target_new"
            case rephrasePrompt = "rephrase_prompt", localityPrompt = "locality_prompt", localityGroundTruth = "locality_ground_truth"
        }
    }

    /// The files' bytes (by name inside the directory) and the counts, computed in memory.
    public static func generate(_ o: SynthOptions) throws -> (files: [(name: String, data: Data)], counts: [String: Int]) {
        try o.validate()
        let facts = facts(o), held = heldOut(o)
        let seen = held.map { h in (0..<o.templates).filter { !h.contains($0) } }
        var rng = RNG(seed: o.seed ^ 0x434F_5250_5553)          // "CORPUS"
        let subjects = Array(Set(facts.map(\.subject))).sorted()

        // statements: repetition k of fact f uses seen template (f + k) mod |seen|
        var sentences: [String] = []
        sentences.reserveCapacity(facts.count * o.repetitions * 2)
        for (f, fact) in facts.enumerated() {
            let ts = seen[fact.relation]
            for k in 0..<o.repetitions {
                sentences.append(fill(relations[fact.relation].templates[ts[(f + k) % ts.count]], subject: fact.subject, object: fact.object))
            }
        }
        let statements = sentences.count
        let fillerCount = Int((Double(statements) * o.filler / (1 - o.filler)).rounded())
        for _ in 0..<fillerCount { sentences.append(fillerSentence(&rng, subjects: subjects)) }
        rng.shuffle(&sentences)
        var corpus = ""
        for (i, s) in sentences.enumerated() {
            if i > 0 && i % sentencesPerDocument == 0 { corpus += "\n" }
            corpus += s + "\n"
        }

        // probes: every fact in every template
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var probes = Data()
        for fact in facts {
            let rel = relations[fact.relation]
            for t in 0..<o.templates {
                let line = ProbeLine(prompt: fill(rel.templates[t], subject: fact.subject, object: "[MASK]"), target: fact.object,
                                     subject: fact.subject, relation: rel.name, fact: "\(rel.name):\(fact.subject)",
                                     split: held[fact.relation].contains(t) ? "held-out" : "train", pattern: t, bucket: o.repetitions)
                probes.append(try enc.encode(line)); probes.append(0x0A)
            }
        }

        // CounterFact cases: the prompt is a training template's text before " [Y] ."
        var cfRNG = RNG(seed: o.seed ^ 0x4346_4143_54)          // "CFACT"
        func prefix(_ t: String, _ subject: String) -> String { fill(String(t.dropLast(" [Y] .".count)), subject: subject, object: "") }
        var holders: [String: [String]] = [:]                   // "relation object" -> subjects, in fact order
        for f in facts { holders["\(f.relation) \(f.object)", default: []].append(f.subject) }
        let objectsOf = (0..<o.relations).map { r in Array(Set(facts.filter { $0.relation == r }.map(\.object))).sorted() }
        var cases: [CounterFactCase] = []
        for (i, fact) in facts.enumerated() {
            let rel = relations[fact.relation], ts = seen[fact.relation], heldList = held[fact.relation].sorted()
            let t = ts[cfRNG.int(ts.count)]
            let others = ts.filter { $0 != t }
            let para = !heldList.isEmpty ? heldList[cfRNG.int(heldList.count)] : (others.isEmpty ? t : others[cfRNG.int(others.count)])
            let neighbours = holders["\(fact.relation) \(fact.object)"]!.filter { $0 != fact.subject }   // >= 1 (validate)
            let alternatives = objectsOf[fact.relation].filter { $0 != fact.object }
            cases.append(CounterFactCase(caseId: i, prompt: prefix(rel.templates[t], fact.subject), subject: fact.subject,
                                         groundTruth: fact.object, targetNew: alternatives[cfRNG.int(alternatives.count)],
                                         rephrasePrompt: prefix(rel.templates[para], fact.subject),
                                         localityPrompt: prefix(rel.templates[t], neighbours[cfRNG.int(neighbours.count)]),
                                         localityGroundTruth: fact.object))
        }
        let counts = ["facts": facts.count, "subjects": subjects.count, "relations": o.relations, "objects": o.relations * o.objects,
                      "statements": statements, "filler_sentences": fillerCount, "documents": (sentences.count + sentencesPerDocument - 1) / sentencesPerDocument,
                      "words": corpus.split(whereSeparator: { $0 == " " || $0 == "\n" }).count,
                      "probes": facts.count * o.templates, "held_out_probes": facts.count * o.heldOutTemplates, "counterfact_cases": cases.count]
        return ([(corpusFile, Data(corpus.utf8)), (probesFile, probes), (counterfactFile, try enc.encode(cases))], counts)
    }

    static func fillerSentence(_ rng: inout RNG, subjects: [String]) -> String {
        func pick(_ a: [String]) -> String { a[rng.int(a.count)] }
        func np() -> String {
            let words = rng.int(2) == 0 ? [pick(adjectives), pick(nouns)] : [pick(nouns)]
            let det = pick(determiners)
            return (det == "a" && "aeiou".contains(words[0].first!) ? "an" : det) + " " + words.joined(separator: " ")
        }
        let agent = !subjects.isEmpty && rng.int(4) == 0 ? pick(subjects) : np()
        switch rng.int(4) {
        case 0: return "\(agent) \(pick(intransitive)) \(pick(adverbs)) ."
        case 1: return "\(agent) \(pick(transitive)) \(np()) ."
        case 2: return "\(agent) \(pick(intransitive)) \(pick(prepositions)) \(np()) ."
        default: return "\(agent) \(pick(transitive)) \(np()) \(pick(prepositions)) \(np()) ."
        }
    }

    // MARK: writing

    public enum Status: String, Sendable { case written, upToDate = "up to date" }

    /// Generate into `o.out`, unless it already holds exactly these files for these settings.
    /// Refuses a directory holding anything else (another corpus, other files).
    @discardableResult
    public static func write(_ o: SynthOptions, log: (String) -> Void) throws -> (status: Status, manifest: SyntheticManifest) {
        try o.validate()
        var settings = o
        settings.out = ""
        let fm = FileManager.default
        let manifestPath = o.out + "/" + manifestFile
        if let data = fm.contents(atPath: manifestPath) {
            guard let old = try? JSONDecoder().decode(SyntheticManifest.self, from: data) else {
                throw OptionError(key: "out", "\(o.out): \(manifestFile) is not a synthetic corpus manifest; remove the directory or choose another one")
            }
            guard old.settings == settings else {
                let diff = Settings.differences(old: try Settings.object(old.settings), new: try Settings.object(settings))
                throw OptionError(key: "out", "\(o.out) holds a synthetic corpus made with other settings (\(diff.joined(separator: ", "))); remove it or choose another output directory")
            }
            if old.version != SyntheticManifest.currentVersion {
                log("\(o.out): made by an older generator (version \(old.version)); generating it again")
            } else if try files.allSatisfy({ try sha256(o.out + "/" + $0) == old.files[$0] }) {
                return (.upToDate, old)
            } else {
                log("\(o.out): files differ from \(manifestFile); generating them again")
            }
        } else if fm.fileExists(atPath: o.out) {
            let ours = Set(files.map { String($0.split(separator: "/")[0]) })
            let entries = (try? fm.contentsOfDirectory(atPath: o.out)) ?? []
            if let other = entries.sorted().first(where: { !ours.contains($0) && !$0.hasPrefix(".") }) {
                throw OptionError(key: "out", "\(o.out) is not empty (\(other)) and holds no \(manifestFile); choose another output directory")
            }
        }
        try AtomicFile.checkWritableDirectory(o.out, flag: "--out")
        let (generated, counts) = try generate(o)
        var hashes: [String: String] = [:]
        for (name, data) in generated {
            let path = o.out + "/" + name
            let dir = (path as NSString).deletingLastPathComponent
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            AtomicFile.removeStale(in: dir)
            try AtomicFile.write(data, to: path)
            hashes[name] = SHA256.hex(data)
        }
        let manifest = SyntheticManifest(settings: settings, counts: counts, files: hashes)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try AtomicFile.write(try enc.encode(manifest), to: manifestPath)
        return (.written, manifest)
    }

    static func sha256(_ path: String) throws -> String? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        return SHA256.hex(d)
    }
}

/// Made-up words from consonant-vowel syllables: distinct from each other and from `reserved`.
struct MadeUpWords {
    static let consonants = Array("bdfgklmnprstvz").map(String.init)
    static let vowels = Array("aeiou").map(String.init)
    var used: Set<String>
    init(reserved: Set<String>) { used = reserved }

    mutating func next(syllables: Int, _ rng: inout RNG) -> String {
        while true {
            let w = (0..<syllables).map { _ in MadeUpWords.consonants[rng.int(MadeUpWords.consonants.count)] + MadeUpWords.vowels[rng.int(MadeUpWords.vowels.count)] }.joined()
            if used.insert(w).inserted { return w }
        }
    }
}
