// `droplab corpus facts`: real ParaRel facts put into the Wikipedia pretraining corpus at
// controlled exposure, so that a model KNOWS facts it is probed on (the design of
// controlled-exposure studies, Allen-Zhu & Li, "Physics of Language Models 3.1": knowledge is
// extractable when training states it in diverse forms). Each fact is assigned, stratified by
// (relation, object), to an exposure bucket (--exposures 0,1,4,16,64: stated that many times;
// bucket 0 is the control, never stated). A statement is the fact rendered in one of its
// relation's TRAINING patterns, cycling from a seeded start so a fact is stated in diverse
// patterns; about --held-out 0.3 of each relation's patterns never appear in the corpus and
// make the held-out probes.
//
// The corpus is the Wikipedia stream (the shards of <data root>/wiki_en in order, whole
// documents, optionally cut at --wiki-lines) with each statement on a line of its own after
// a uniformly drawn (seeded) line of a document. Pretraining's split is respected: a document
// whose hash puts it in the validation part (TokenShardCache, --val-fraction) gets no
// statement, and a document that would land there once its statements are in has them placed
// again; the documents at the end of the stream (the last 1024 tokens) get none either, since
// the packer drops the stream's last partial sequence. So every statement counted here is in
// the tokens pretraining trains on.
//
// The vocabulary (--vocab-size, VocabTrainer) is learned from the Wikipedia part alone, so it
// does not depend on which facts are stated; facts whose object is not one word piece of it are
// left out before sampling, as are exact duplicates, a subject's second object in a relation (or
// in relations sharing a pattern text, like P17/P131/P276/P30's "[X] is located in [Y] ."), and a
// subject and object already kept as a fact, in either order (P36 Germany -> Berlin is P1376
// Berlin -> Germany; P47's borders go both ways): every probe then has one right answer, and no
// control fact is stated under another relation's name.
//
// Files written into --out:
//   corpus.txt    the corpus (pretrain --corpus DIR/corpus.txt; one file, so pretrain's own
//                 vocabulary would also come from all of it)
//   vocab.txt     the WordPiece vocabulary (pretrain --vocab DIR/vocab.txt)
//   probes.jsonl  every kept fact in every pattern of its relation, as user probes
//                 (Probes.swift) with "split" ("train" | "held-out"), "bucket" and "concept"
//   facts.jsonl   one line per fact: relation, subject, object, bucket, statements per pattern
//   salient.jsonl each distinct statement line with its object ({"line", "word"}), for
//                 pretrain --salient (the object chosen for the loss in every statement)
//   facts.json    settings, counts, per-bucket and per-relation numbers, facts dropped and
//                 why, token shares, sha256 of the inputs and of the files (written last)
// The same settings and inputs give the same bytes. A directory holding anything else is never
// overwritten.

import Autograd
import Checkpoint
import Foundation
import Text
import Training

public struct FactsCorpusOptions: CommandOptions, Equatable, Sendable {
    // defaults: the study's corpus, all of Wikipedia (38.0M tokens) with 12,000 of the 13,555
    // eligible facts, 2,400 per bucket: 204,000 statements, 5.75% of the tokens
    public var facts = 12_000              // sampled stratified by (relation, object) from the eligible facts
    public var exposures = [0, 1, 4, 16, 64]
    public var heldOut = 0.3               // share of each relation's patterns held out (>= 1 with 2+ patterns)
    public var maxShare = 0.1              // fact statements' largest share of the corpus tokens
    public var vocabSize = 8192
    public var wikiLines = 0               // > 0: the Wikipedia part ends with the document holding this line
    public var valFraction = 0.005         // pretrain's --val-fraction (which documents it holds out)
    public var seed: UInt64 = 0
    public var dataDir: String? = nil
    public var out = "checkpoints/facts"
    public init() {}

    public static let maxExposure = 100_000

    public func validate() throws {
        try Check.that(!exposures.isEmpty && exposures.count <= 32, "exposures", "must list 1 to 32 counts, got \(exposures.count)")
        try Check.that(exposures.allSatisfy { $0 >= 0 && $0 <= FactsCorpusOptions.maxExposure }, "exposures",
                       "must be in 0...\(FactsCorpusOptions.maxExposure), got \(exposures.map(String.init).joined(separator: ","))")
        try Check.that(zip(exposures, exposures.dropFirst()).allSatisfy { $0 < $1 }, "exposures",
                       "must be increasing, got \(exposures.map(String.init).joined(separator: ","))")
        try Check.that(exposures.last! > 0, "exposures", "must hold a count above 0, got \(exposures.map(String.init).joined(separator: ","))")
        try Check.range(facts, exposures.count...1_000_000, "facts")
        try Check.that(heldOut > 0 && heldOut < 1, "held-out", "must be in (0, 1), got \(heldOut)")
        try Check.that(maxShare > 0 && maxShare < 1, "max-share", "must be in (0, 1), got \(maxShare)")
        try Check.range(vocabSize, 64...(1 << 20), "vocab-size")
        try Check.range(wikiLines, 0...(1 << 40), "wiki-lines")
        try Check.that(valFraction > 0 && valFraction < 1, "val-fraction", "must be in (0, 1), got \(valFraction)")
        if let d = dataDir { try Check.nonEmpty(d, "data-dir") }
        try Check.nonEmpty(out, "out")
    }
}

/// facts.json.
public struct FactsManifest: Codable, Equatable, Sendable {
    public var format = "droplab-facts-corpus"
    public var version = 1
    public var settings: FactsCorpusOptions          // `out` and `dataDir` left out: the directories may move
    public var pretrain: FactsPretrainHint
    public var counts: [String: Int]
    public var shares: [String: Double]
    public var buckets: [FactsBucket]
    public var relations: [String: FactsRelationCounts]
    public var dropped: [String: Int]                // facts left out before sampling, by reason
    public var inputs: [String: String]              // path under the data root -> sha256
    public var files: [String: String]               // file inside the directory -> sha256
}

/// How to pretrain on the corpus so that the counts hold.
public struct FactsPretrainHint: Codable, Equatable, Sendable {
    public var corpus: String                        // inside the directory: pass as --corpus
    public var vocab: String                         // inside the directory: pass as --vocab
    public var valFraction: Double                   // pass as --val-fraction when not pretrain's default
    public var trainTokens: Int                      // tokens of the training part ([SEP]s included)
    public var note: String
}

public struct FactsBucket: Codable, Equatable, Sendable {
    public var exposure: Int
    public var facts: Int
    public var statements: Int
    public var tokens: Int                           // of its statements
    public var trainProbes: Int
    public var heldOutProbes: Int
}

public struct FactsRelationCounts: Codable, Equatable, Sendable {
    public var patterns: Int
    public var trainPatterns: [Int]                  // pattern indices (lines of graphs_json/<relation>.jsonl)
    public var heldOutPatterns: [Int]
    public var facts: Int                            // tuples read
    public var eligible: Int                         // after the drops
    public var sampled: Int
    public var perBucket: [Int]                      // aligned with settings.exposures
    public var dropped: [String: Int]
}

public struct FactsCorpusError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public enum FactsCorpus {
    public static let corpusFile = "corpus.txt"
    public static let vocabFile = "vocab.txt"
    public static let probesFile = "probes.jsonl"
    public static let factsFile = "facts.jsonl"
    public static let salientFile = "salient.jsonl"
    public static let manifestFile = "facts.json"
    static let files = [corpusFile, vocabFile, probesFile, factsFile, salientFile]

    /// Statements stay out of the last this-many tokens of the training stream: pretrain packs
    /// it into sequences of --seq-len (at most 512) and drops the last partial one.
    static let tailTokens = 1024

    // MARK: ParaRel

    public struct Pattern: Sendable { public var index: Int; public var text: String }

    public struct Relation: Sendable {
        public var id: String
        public var patterns: [Pattern]               // distinct (after normalisation), file order
        public var heldOut: [Int] = []               // pattern indices, ascending
        public var train: [Int] = []
    }

    public struct Fact: Sendable {
        public var relation: Int                     // index into the relations
        public var subject, object, uuid: String
        public var bucket = 0                        // exposure count
        public var offset = 0                        // first training pattern (statement k uses train[(offset + k) % n])
    }

    /// The words the basic tokenizer sees, joined: how texts are compared (case, accents and
    /// spacing around punctuation do not count, as for the model).
    static func normalized(_ s: String) -> String { WordPieceTokenizer.basicTokenize(s).joined(separator: " ") }

    static func fill(_ pattern: String, subject: String, object: String) -> String {
        pattern.replacingOccurrences(of: "[X]", with: subject).replacingOccurrences(of: "[Y]", with: object)
    }

    /// Relations with both patterns and facts (sorted), their facts in file order, and the
    /// number of tuples of relations without patterns.
    package static func readParaRel(_ root: String) throws -> (relations: [Relation], facts: [[(subject: String, object: String, uuid: String)]],
                                                       withoutPatterns: Int, duplicatePatterns: Int) {
        let fm = FileManager.default
        func names(_ dir: String) -> [String] {
            ((try? fm.contentsOfDirectory(atPath: root + "/pararel/" + dir)) ?? []).filter { $0.hasSuffix(".jsonl") }.map { String($0.dropLast(6)) }.sorted()
        }
        let withPatterns = names("graphs_json"), withFacts = Set(names("trex_lms_vocab"))
        guard !withPatterns.isEmpty, !withFacts.isEmpty else {
            throw OptionError(key: "data-dir", "\(root)/pararel: no ParaRel patterns and facts (graphs_json/, trex_lms_vocab/); set --data-dir or DROPLAB_DATA")
        }
        var relations: [Relation] = [], facts: [[(subject: String, object: String, uuid: String)]] = []
        var duplicatePatterns = 0
        for id in withPatterns where withFacts.contains(id) {
            var rel = Relation(id: id, patterns: [])
            var seen = Set<String>(), k = 0
            try ProbeSet.forEachObject(root + "/pararel/graphs_json/\(id).jsonl") { o, place in
                guard let p = o["pattern"] as? String, p.components(separatedBy: "[X]").count == 2, p.components(separatedBy: "[Y]").count == 2,
                      !p.contains("\n") else {
                    throw FactsCorpusError("\(place): not a ParaRel pattern (needs \"pattern\" with [X] and [Y] once each)")
                }
                if seen.insert(normalized(p)).inserted { rel.patterns.append(Pattern(index: k, text: p)) } else { duplicatePatterns += 1 }
                k += 1
            }
            var list: [(subject: String, object: String, uuid: String)] = []
            try ProbeSet.forEachObject(root + "/pararel/trex_lms_vocab/\(id).jsonl") { o, place in
                guard let s = o["sub_label"] as? String, let t = o["obj_label"] as? String else {
                    throw FactsCorpusError("\(place): not a T-REx fact (needs sub_label and obj_label)")
                }
                list.append((s, t, o["uuid"] as? String ?? "\(id):\(s):\(t)"))
            }
            relations.append(rel); facts.append(list)
        }
        var withoutPatterns = 0
        for id in withFacts.subtracting(withPatterns).sorted() {
            try ProbeSet.forEachObject(root + "/pararel/trex_lms_vocab/\(id).jsonl") { _, _ in withoutPatterns += 1 }
        }
        return (relations, facts, withoutPatterns, duplicatePatterns)
    }

    /// Per relation, the held-out patterns: round(heldOut x n), at least 1 and at most n - 1
    /// (none for a relation with one pattern), a seeded choice. Relations that share a pattern
    /// text ("[X] is located in [Y] ." is in P17, P131, P276 and P30) treat it alike: the first
    /// relation (sorted) to choose decides for the others, so a held-out text is never a training
    /// text elsewhere, unless that would leave a relation without a held-out or a training
    /// pattern (then it chooses alone; returned: how many held-out patterns are trained elsewhere).
    @discardableResult
    static func choosePatterns(_ relations: inout [Relation], _ o: FactsCorpusOptions) -> Int {
        var rng = RNG(seed: o.seed ^ 0x4845_4C44_4F55_54)   // "HELDOUT"
        var decided: [String: Bool] = [:]                    // normalised text -> held out
        for r in relations.indices {
            let pats = relations[r].patterns, n = pats.count
            let keys = pats.map { normalized($0.text) }
            let h = n < 2 ? 0 : min(n - 1, max(1, Int((o.heldOut * Double(n)).rounded())))
            var order = Array(pats.indices)
            rng.shuffle(&order)
            var held = Set(order.filter { decided[keys[$0]] == true })
            for i in order where decided[keys[i]] == nil && held.count < h { held.insert(i) }
            if n >= 2 && (held.isEmpty || held.count == n) { held = Set(order.prefix(h)) }
            for i in pats.indices where decided[keys[i]] == nil { decided[keys[i]] = held.contains(i) }
            relations[r].heldOut = held.map { pats[$0].index }.sorted()
            relations[r].train = pats.indices.filter { !held.contains($0) }.map { pats[$0].index }
        }
        var trained = Set<String>()
        for rel in relations { for p in rel.patterns where rel.train.contains(p.index) { trained.insert(normalized(p.text)) } }
        return relations.map { rel in rel.patterns.filter { rel.heldOut.contains($0.index) && trained.contains(normalized($0.text)) }.count }.reduce(0, +)
    }

    /// Relations linked by a shared pattern text, as group numbers (the first relation's index).
    static func patternGroups(_ relations: [Relation]) -> [Int] {
        var group = Array(relations.indices)
        func find(_ i: Int) -> Int { var i = i; while group[i] != i { i = group[i] }; return i }
        var owner: [String: Int] = [:]
        for (r, rel) in relations.enumerated() {
            for p in rel.patterns {
                let k = normalized(p.text)
                if let o = owner[k] { let (a, b) = (find(o), find(r)); group[max(a, b)] = min(a, b) } else { owner[k] = r }
            }
        }
        return relations.indices.map(find)
    }

    // MARK: Wikipedia

    struct StopReading: Error {}

    /// The Wikipedia part as chunks: a document (its `<doc ...>` line to its `</doc>`, or to the
    /// next `<doc` line) or a line outside any document, read across the files as one stream
    /// (as pretrain reads the single corpus file). `lineLimit` > 0 stops after the chunk that
    /// holds that line. Returns the lines read and how many files were opened.
    static func readWiki(_ files: [String], lineLimit: Int, progress: (Int, Int) -> Void,
                         _ body: (_ lines: [String], _ document: Bool) throws -> Void) throws -> (lines: Int, files: Int) {
        var chunk: [String] = [], inDoc = false, lines = 0, opened = 0
        func emit(_ document: Bool) throws {
            if !chunk.isEmpty { try body(chunk, document) }
            chunk.removeAll(keepingCapacity: true)
            if lineLimit > 0 && lines >= lineLimit { throw StopReading() }
        }
        do {
            for (i, f) in files.enumerated() {
                opened = i + 1
                progress(i, lines)
                try Corpus.forEachLine(f) { line in
                    if line.hasPrefix("<doc ") || line == "<doc>" {
                        if inDoc { try emit(true) }
                        inDoc = true
                        chunk.append(line); lines += 1
                    } else if inDoc {
                        chunk.append(line); lines += 1
                        if line == "</doc>" { inDoc = false; try emit(true) }
                    } else {
                        chunk.append(line); lines += 1
                        try emit(false)
                    }
                }
            }
            if inDoc { try emit(true) }
        } catch is StopReading {}
        return (lines, opened)
    }

    /// Indices of a document chunk's content lines: what Corpus.forEachDocument joins into the
    /// document's text (not the tags, not blank lines).
    static func contentLines(_ lines: [String]) -> [Int] {
        (1..<lines.count).filter { i in
            !(i == lines.count - 1 && lines[i] == "</doc>") && !lines[i].allSatisfy { $0 == " " || $0 == "\t" || $0 == "\r" }
        }
    }

    /// Whether pretrain holds the document out for validation (TokenShardCache.shard's rule).
    static func isValidation(_ text: String, _ fraction: Double) -> Bool {
        Double(StableHash.of(text) % 1_000_000) < fraction * 1_000_000
    }

    struct Doc {
        var content: Int32          // content lines (statement slots: after each of them)
        var validation: Bool
        var tokens: Bool            // has at least one token
        var eligible = false
    }

    /// What the first pass over Wikipedia learns.
    struct WikiScan {
        var docs: [Doc] = []
        var counts = WordCounts(maxDistinctWords: Int.max)   // never pruned: the token total stays exact
        var validationTexts: [String] = []
        var tail: [(doc: Int, text: String, words: Int)] = []     // the last training documents
        var lines = 0, files = 0, bytes = 0, words = 0, looseLines = 0
    }

    static func words(_ s: String) -> Int { s.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).count }

    static func scanWiki(_ files: [String], _ o: FactsCorpusOptions, log: (String) -> Void) throws -> WikiScan {
        var scan = WikiScan()
        var tailWords = 0
        let (lines, opened) = try readWiki(files, lineLimit: o.wikiLines, progress: { i, n in
            log("corpus facts: reading \(files[i]) (\(n) lines so far)")
        }) { lines, document in
            scan.bytes += lines.reduce(0) { $0 + $1.utf8.count + 1 }
            guard document else { scan.looseLines += 1; return }
            let content = contentLines(lines)
            let text = content.map { lines[$0] }.joined(separator: "\n")
            let before = scan.counts.totalWords
            if !content.isEmpty { scan.counts.add(text) }
            let w = words(text)
            scan.words += w
            let doc = Doc(content: Int32(content.count), validation: !content.isEmpty && isValidation(text, o.valFraction),
                          tokens: scan.counts.totalWords > before)
            if doc.validation { scan.validationTexts.append(text) } else if doc.tokens {
                scan.tail.append((scan.docs.count, text, w)); tailWords += w
                while scan.tail.count > 1 && tailWords - scan.tail[0].words >= 4 * tailTokens {
                    tailWords -= scan.tail.removeFirst().words
                }
            }
            scan.docs.append(doc)
        }
        scan.lines = lines; scan.files = opened
        return scan
    }

    // MARK: facts

    /// The facts kept (relation order, file order) and the drops by reason, per relation.
    static func eligibleFacts(_ relations: [Relation], _ raw: [[(subject: String, object: String, uuid: String)]],
                              tokenizer tok: WordPieceTokenizer) -> (facts: [Fact], dropped: [[String: Int]]) {
        var out: [Fact] = [], dropped: [[String: Int]] = []
        var pairs = Set<String>()                            // the two of a kept fact, sorted: "a \t b" (P36 Germany -> Berlin is P1376 Berlin -> Germany)
        let groups = patternGroups(relations)
        var subjectsOf: [Int: Set<String>] = [:]             // per group of relations sharing a pattern text
        for (r, list) in raw.enumerated() {
            var drop: [String: Int] = [:], seen = Set<String>()
            for f in list {
                let s = normalized(f.subject), t = normalized(f.object)
                if s.isEmpty || t.isEmpty || (f.subject + f.object).contains(where: { $0 == "\n" || $0 == "\r" })
                    || f.subject.contains("[") || f.object.contains("[") {
                    drop["malformed", default: 0] += 1; continue
                }
                guard seen.insert(s + "\t" + t).inserted else { drop["duplicate", default: 0] += 1; continue }
                let ids = tok.encode(f.object)
                guard ids.count == 1, ids[0] != tok.unkId else { drop["object_not_one_piece", default: 0] += 1; continue }
                guard subjectsOf[groups[r]]?.contains(s) != true else { drop["subject_has_another_object", default: 0] += 1; continue }
                let pair = s < t ? s + "\t" + t : t + "\t" + s
                guard !pairs.contains(pair) else { drop["pair_already_kept", default: 0] += 1; continue }
                subjectsOf[groups[r], default: []].insert(s); pairs.insert(pair)
                out.append(Fact(relation: r, subject: f.subject, object: f.object, uuid: f.uuid))
            }
            dropped.append(drop)
        }
        return (out, dropped)
    }

    /// `n` of `facts`, stratified by (relation, object), each given a bucket, stratified the same
    /// way, and its first training pattern. Strata (each shuffled) are laid end to end in a
    /// seeded order; systematic sampling takes every (M/n)-th fact from a random start, so each
    /// stratum gets its share of n (rounded); buckets go round the sampled list, so each stratum's
    /// facts spread evenly over them, and every bucket gets n/buckets facts (rounded).
    static func sample(_ facts: [Fact], _ n: Int, _ relations: [Relation], _ o: FactsCorpusOptions) -> [Fact] {
        var rng = RNG(seed: o.seed ^ 0x5341_4D50_4C45)        // "SAMPLE"
        var strata: [String: [Int]] = [:]
        for (i, f) in facts.enumerated() { strata["\(relations[f.relation].id)\t\(normalized(f.object))", default: []].append(i) }
        var keys = strata.keys.sorted()
        rng.shuffle(&keys)
        var order: [Int] = []
        for k in keys {
            var members = strata[k]!
            rng.shuffle(&members)
            order += members
        }
        let u = Double(rng.next() >> 11) * 0x1p-53
        let m = Double(order.count)
        var chosen: [(index: Int, bucket: Int)] = []
        var bucket = rng.int(o.exposures.count)
        for i in 0..<n {
            chosen.append((order[min(order.count - 1, Int((Double(i) + u) * m / Double(n)))], o.exposures[bucket]))
            bucket = (bucket + 1) % o.exposures.count
        }
        // relation order, then file order (the facts array's), for the output files
        chosen.sort { $0.index < $1.index }
        var out: [Fact] = []
        for (index, b) in chosen {
            var f = facts[index]
            f.bucket = b
            let k = relations[f.relation].train.count
            f.offset = k > 0 ? rng.int(k) : 0
            out.append(f)
        }
        return out
    }

    // MARK: writing

    public enum Status: String, Sendable { case written, upToDate = "up to date" }

    struct ProbeLine: Codable {
        var prompt, target, subject, relation, fact, split, concept: String
        var pattern, bucket: Int
    }

    struct FactLine: Codable {
        var fact, relation, subject, object: String
        var bucket: Int
        var statements: [String: Int]                // pattern index -> statements in it
    }

    /// Input files under the data root: every ParaRel pattern and fact file, and the
    /// Wikipedia shards in reading order.
    static func inputFiles(_ root: String) throws -> (pararel: [String], wiki: [String]) {
        let fm = FileManager.default
        var pararel: [String] = []
        for dir in ["pararel/graphs_json", "pararel/trex_lms_vocab"] {
            pararel += ((try? fm.contentsOfDirectory(atPath: root + "/" + dir)) ?? []).filter { $0.hasSuffix(".jsonl") }.sorted().map { dir + "/" + $0 }
        }
        let wikiDir = root + "/" + Pretrain.defaultCorpus
        guard fm.fileExists(atPath: wikiDir) else {
            throw OptionError(key: "data-dir", "\(wikiDir) does not exist: no Wikipedia shards (set --data-dir or DROPLAB_DATA)")
        }
        let wiki = try Corpus.files([wikiDir]).map { String($0.dropFirst(root.count + 1)) }
        return (pararel, wiki)
    }

    static func sha256(_ path: String) throws -> String {
        do { return SHA256.hex(try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)) } catch {
            throw FactsCorpusError("\(path): cannot read")
        }
    }

    /// Generate into `o.out`, unless it already holds exactly these files for these settings and
    /// inputs. Refuses a directory holding anything else (other settings, other files).
    @discardableResult
    public static func write(_ o: FactsCorpusOptions, log: @escaping (String) -> Void) throws -> (status: Status, manifest: FactsManifest) {
        try o.validate()
        let started = Date()
        var settings = o
        settings.out = ""; settings.dataDir = nil
        let root = DataRoot.resolve(o.dataDir)
        let fm = FileManager.default
        let manifestPath = o.out + "/" + manifestFile
        let inputs = try inputFiles(root)
        if let data = fm.contents(atPath: manifestPath) {
            guard let old = try? JSONDecoder().decode(FactsManifest.self, from: data) else {
                throw OptionError(key: "out", "\(o.out): \(manifestFile) is not a facts corpus manifest; remove the directory or choose another one")
            }
            guard old.settings == settings else {
                let diff = Settings.differences(old: try Settings.object(old.settings), new: try Settings.object(settings))
                throw OptionError(key: "out", "\(o.out) holds a facts corpus made with other settings (\(diff.joined(separator: ", "))); remove it or choose another output directory")
            }
            let oldWiki = old.inputs.keys.filter { !$0.hasPrefix("pararel/") }.sorted()
            let sameInputs = Set(old.inputs.keys.filter { $0.hasPrefix("pararel/") }) == Set(inputs.pararel)
                && Array(inputs.wiki.prefix(oldWiki.count)) == oldWiki && (o.wikiLines > 0 || oldWiki.count == inputs.wiki.count)
            if try sameInputs && old.inputs.allSatisfy({ try sha256(root + "/" + $0.key) == $0.value })
                && files.allSatisfy({ fm.fileExists(atPath: o.out + "/" + $0) ? try sha256(o.out + "/" + $0) == old.files[$0] : false }) {
                return (.upToDate, old)
            }
            log("\(o.out): files or inputs differ from \(manifestFile); generating them again")
        } else if fm.fileExists(atPath: o.out) {
            let entries = (try? fm.contentsOfDirectory(atPath: o.out)) ?? []
            if let other = entries.sorted().first(where: { !files.contains($0) && !$0.hasPrefix(".") }) {
                throw OptionError(key: "out", "\(o.out) is not empty (\(other)) and holds no \(manifestFile); choose another output directory")
            }
        }
        try AtomicFile.checkWritableDirectory(o.out, flag: "--out")

        // 1. Wikipedia: documents, word counts, the validation split
        let wikiPaths = inputs.wiki.map { root + "/" + $0 }
        let scan = try scanWiki(wikiPaths, o, log: log)
        guard scan.docs.contains(where: { $0.tokens && !$0.validation }) else {
            throw OptionError(key: "wiki-lines", "\(o.wikiLines) gives no Wikipedia document to train on")
        }
        log("corpus facts: Wikipedia part: \(scan.docs.count) documents, \(scan.lines) lines, \(scan.words) words "
            + "(\(scan.docs.filter(\.validation).count) documents held out for validation at --val-fraction \(o.valFraction))")

        // 2. the vocabulary, from the Wikipedia part only
        let vocab = VocabTrainer.trainVocabulary(counts: scan.counts, vocabSize: o.vocabSize, log: log)
        let tok = try WordPieceTokenizer(vocab: vocab)
        var wikiTokens = 0, counted = 0
        for (w, c) in scan.counts.counts { wikiTokens += c * tok.encode(w).count; counted += c }
        wikiTokens += scan.counts.totalWords - counted            // words over 100 characters: one [UNK] each
        var validationTokens = 0, validationWikiTokens = 0
        for t in scan.validationTexts {
            let n = tok.encode(t).count
            validationWikiTokens += n; validationTokens += n > 0 ? n + 1 : 0
        }
        var docs = scan.docs
        var tail = Set<Int>(), tailCount = 0
        for d in scan.tail.reversed() where tailCount < tailTokens {
            tail.insert(d.doc); tailCount += tok.encode(d.text).count + 1
        }
        for i in docs.indices { docs[i].eligible = !docs[i].validation && docs[i].tokens && docs[i].content > 0 && !tail.contains(i) }
        let trainDocs = docs.filter { !$0.validation && $0.tokens }.count

        // 3. facts: patterns held out, drops, sampling, buckets
        let pararel = try readParaRel(root)
        var relations = pararel.relations
        let raw = pararel.facts
        let heldOutTrainedElsewhere = choosePatterns(&relations, o)
        let (eligible, droppedPerRelation) = eligibleFacts(relations, raw, tokenizer: tok)
        var dropped: [String: Int] = [:]
        for d in droppedPerRelation { dropped.merge(d, uniquingKeysWith: +) }
        try Check.that(o.facts <= eligible.count, "facts",
                       "\(o.facts) is more than the \(eligible.count) eligible facts (of the \(raw.map(\.count).reduce(0, +)) in relations with patterns; "
                       + dropped.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key.replacingOccurrences(of: "_", with: " "))" }.joined(separator: ", ")
                       + "; --vocab-size \(o.vocabSize) decides which objects are one word piece)")
        dropped["relation_without_patterns"] = pararel.withoutPatterns
        let facts = sample(eligible, o.facts, relations, o)
        let patternText: [[Int: String]] = relations.map { r in Dictionary(uniqueKeysWithValues: r.patterns.map { ($0.index, $0.text) }) }

        // 4. statements: fact f's k-th uses its training pattern (offset + k) mod n
        var statements: [(fact: Int32, pattern: Int32)] = []
        var factTokens = 0, factWords = 0
        var bucketStatements: [Int: Int] = [:], bucketTokens: [Int: Int] = [:]
        var stated = Set<String>()                               // normalised statement texts
        for (i, f) in facts.enumerated() where f.bucket > 0 {
            let train = relations[f.relation].train
            var tokensOf: [Int: Int] = [:]
            for k in 0..<f.bucket {
                let p = train[(f.offset + k) % train.count]
                if tokensOf[p] == nil {
                    let text = fill(patternText[f.relation][p]!, subject: f.subject, object: f.object)
                    tokensOf[p] = tok.encode(text).count
                    stated.insert(normalized(text))
                }
                statements.append((Int32(i), Int32(p)))
                factTokens += tokensOf[p]!
                factWords += words(fill(patternText[f.relation][p]!, subject: f.subject, object: f.object))
                bucketStatements[f.bucket, default: 0] += 1; bucketTokens[f.bucket, default: 0] += tokensOf[p]!
            }
        }
        let share = Double(factTokens) / Double(wikiTokens + factTokens)
        try Check.that(share <= o.maxShare, "max-share", String(format: "%g is exceeded: the %d statements are %d tokens, %.2f%% of the corpus's %d "
                                                                 + "(lower --facts %d or --exposures)", o.maxShare, statements.count, factTokens,
                                                                 100 * share, wikiTokens + factTokens, o.facts))

        // 5. where they go: uniformly over the lines of the eligible documents
        var slotStart: [Int] = [], slotDoc: [Int] = []
        var slots = 0
        for (i, d) in docs.enumerated() where d.eligible { slotStart.append(slots); slotDoc.append(i); slots += Int(d.content) }
        guard slots > 0 else { throw OptionError(key: "wiki-lines", "\(o.wikiLines) leaves no document to put statements in") }
        var rng = RNG(seed: o.seed ^ 0x504C_4143_45)          // "PLACE"
        var order = Array(0..<Int32(statements.count))
        rng.shuffle(&order)
        var placements: [(doc: Int32, line: Int32, seq: Int32, statement: Int32)] = []
        placements.reserveCapacity(order.count)
        for (q, s) in order.enumerated() {
            let slot = rng.int(slots)
            var lo = 0, hi = slotStart.count - 1                  // the last eligible document starting at or before slot
            while lo < hi { let mid = (lo + hi + 1) / 2; if slotStart[mid] <= slot { lo = mid } else { hi = mid - 1 } }
            placements.append((Int32(slotDoc[lo]), Int32(slot - slotStart[lo]), Int32(q), s))
        }
        placements.sort { ($0.doc, $0.line, $0.seq) < ($1.doc, $1.line, $1.seq) }

        // 6. the corpus: Wikipedia again, statements in place
        func statementText(_ s: Int32) -> String {
            let (fi, p) = statements[Int(s)]
            let f = facts[Int(fi)]
            return fill(patternText[f.relation][Int(p)]!, subject: f.subject, object: f.object)
        }
        try fm.createDirectory(atPath: o.out, withIntermediateDirectories: true)
        AtomicFile.removeStale(in: o.out)
        let corpusPath = o.out + "/" + corpusFile
        let tmp = AtomicFile.temporaryPath(for: corpusPath)
        let writer = try LineWriter(tmp)
        var redraws = 0, moved = 0, withStatements = 0
        do {
            var d = 0, p = 0
            var carry: [Int32] = []
            _ = try readWiki(wikiPaths, lineLimit: o.wikiLines, progress: { i, _ in
                log(String(format: "corpus facts: writing %@ (%.0f MB so far)", wikiPaths[i], Double(writer.bytes) / 1e6))
            }) { lines, document in
                guard document else { for l in lines { try writer.line(l) }; return }
                defer { d += 1 }
                guard d < docs.count else { throw FactsCorpusError("\(inputs.wiki.joined(separator: ", ")): changed while being read") }
                var here: [(line: Int, seq: Int, statement: Int32)] = []
                while p < placements.count && Int(placements[p].doc) == d {
                    here.append((Int(placements[p].line), here.count, placements[p].statement)); p += 1
                }
                let content = contentLines(lines)
                guard content.count == Int(docs[d].content) else { throw FactsCorpusError("\(inputs.wiki.joined(separator: ", ")): changed while being read") }
                if !carry.isEmpty && docs[d].eligible {
                    var r = RNG(seed: o.seed ^ 0x4341_5252_59 ^ UInt64(d) << 20)   // "CARRY"
                    for s in carry { here.append((r.int(content.count), here.count, s)) }
                    carry = []
                    here.sort { ($0.line, $0.seq) < ($1.line, $1.seq) }
                }
                if here.isEmpty { for l in lines { try writer.line(l) }; return }
                func assemble() -> (all: [String], text: String) {
                    var all: [String] = [], text: [String] = []
                    var c = 0, j = 0
                    for (i, l) in lines.enumerated() {
                        all.append(l)
                        guard c < content.count && content[c] == i else { continue }
                        text.append(l)
                        while j < here.count && here[j].line == c { let s = statementText(here[j].statement); all.append(s); text.append(s); j += 1 }
                        c += 1
                    }
                    return (all, text.joined(separator: "\n"))
                }
                var doc = assemble()
                var attempt = 0
                while isValidation(doc.text, o.valFraction) {   // would be held out: place its statements again
                    attempt += 1; redraws += 1
                    if attempt > 32 { carry += here.map(\.statement); moved += here.count; here = []; doc = assemble(); break }
                    var r = RNG(seed: o.seed ^ 0x5245_4452_4157 ^ UInt64(d) << 20 ^ UInt64(attempt))   // "REDRAW"
                    here = here.map { (r.int(content.count), $0.seq, $0.statement) }.sorted { ($0.line, $0.seq) < ($1.line, $1.seq) }
                    doc = assemble()
                }
                if !here.isEmpty { withStatements += 1 }
                for l in doc.all { try writer.line(l) }
            }
            guard d == docs.count && p == placements.count && carry.isEmpty else {
                throw FactsCorpusError("\(corpusPath): \(carry.count + placements.count - p) statements found no place (the Wikipedia files changed while being read?)")
            }
            try writer.close()
            try AtomicFile.commit(tmp, to: corpusPath)
        } catch {
            writer.abandon()
            throw error
        }

        // 7. vocabulary, probes, facts
        try AtomicFile.write(Data((vocab.joined(separator: "\n") + "\n").utf8), to: o.out + "/" + vocabFile)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var probes = Data(), factLines = Data()
        var trainProbes: [Int: Int] = [:], heldOutProbes: [Int: Int] = [:], leaked = 0
        var perStatement: [Int: [String: Int]] = [:]
        for (fi, p) in statements { perStatement[Int(fi), default: [:]][String(p), default: 0] += 1 }
        for (i, f) in facts.enumerated() {
            let rel = relations[f.relation]
            for pat in rel.patterns {
                let held = rel.heldOut.contains(pat.index)
                if held && stated.contains(normalized(fill(pat.text, subject: f.subject, object: f.object))) { leaked += 1; continue }
                let line = ProbeLine(prompt: fill(pat.text, subject: f.subject, object: "[MASK]"), target: f.object, subject: f.subject,
                                     relation: rel.id, fact: f.uuid, split: held ? "held-out" : "train", concept: f.object,
                                     pattern: pat.index, bucket: f.bucket)
                probes.append(try enc.encode(line)); probes.append(0x0A)
                if held { heldOutProbes[f.bucket, default: 0] += 1 } else { trainProbes[f.bucket, default: 0] += 1 }
            }
            factLines.append(try enc.encode(FactLine(fact: f.uuid, relation: rel.id, subject: f.subject, object: f.object,
                                                     bucket: f.bucket, statements: perStatement[i] ?? [:])))
            factLines.append(0x0A)
        }
        try AtomicFile.write(probes, to: o.out + "/" + probesFile)
        try AtomicFile.write(factLines, to: o.out + "/" + factsFile)
        var salient = Data(), salientSeen = Set<String>()
        for s in statements.indices {
            let text = statementText(Int32(s))
            guard salientSeen.insert(text).inserted else { continue }
            salient.append(try enc.encode(["line": text, "word": facts[Int(statements[s].fact)].object])); salient.append(0x0A)
        }
        try AtomicFile.write(salient, to: o.out + "/" + salientFile)

        // 8. the manifest, last
        log("corpus facts: hashing inputs and outputs")
        var hashes: [String: String] = [:]
        for f in files { hashes[f] = try sha256(o.out + "/" + f) }
        var inputHashes: [String: String] = [:]
        for f in inputs.pararel + inputs.wiki.prefix(scan.files) { inputHashes[f] = try sha256(root + "/" + f) }
        var relationCounts: [String: FactsRelationCounts] = [:]
        for (r, rel) in relations.enumerated() {
            let mine = facts.filter { $0.relation == r }
            relationCounts[rel.id] = FactsRelationCounts(
                patterns: rel.patterns.count, trainPatterns: rel.train, heldOutPatterns: rel.heldOut, facts: raw[r].count,
                eligible: eligible.filter { $0.relation == r }.count, sampled: mine.count,
                perBucket: o.exposures.map { b in mine.filter { $0.bucket == b }.count }, dropped: droppedPerRelation[r])
        }
        let buckets = o.exposures.map { b in
            FactsBucket(exposure: b, facts: facts.filter { $0.bucket == b }.count, statements: bucketStatements[b] ?? 0,
                        tokens: bucketTokens[b] ?? 0, trainProbes: trainProbes[b] ?? 0, heldOutProbes: heldOutProbes[b] ?? 0)
        }
        let trainTokens = wikiTokens - validationWikiTokens + trainDocs + factTokens
        let counts: [String: Int] = [
            "relations": relations.count, "patterns": relations.map(\.patterns.count).reduce(0, +),
            "train_patterns": relations.map(\.train.count).reduce(0, +), "held_out_patterns": relations.map(\.heldOut.count).reduce(0, +),
            "duplicate_patterns": pararel.duplicatePatterns, "held_out_patterns_trained_elsewhere": heldOutTrainedElsewhere,
            "pararel_facts": raw.map(\.count).reduce(0, +), "eligible_facts": eligible.count, "facts": facts.count,
            "statements": statements.count, "probes": trainProbes.values.reduce(0, +) + heldOutProbes.values.reduce(0, +),
            "train_probes": trainProbes.values.reduce(0, +), "held_out_probes": heldOutProbes.values.reduce(0, +),
            "held_out_probes_left_out": leaked,
            "wiki_files": scan.files, "wiki_lines": scan.lines, "wiki_bytes": scan.bytes, "wiki_documents": scan.docs.count,
            "wiki_words": scan.words, "wiki_tokens": wikiTokens, "validation_documents": scan.validationTexts.count,
            "fact_words": factWords, "fact_tokens": factTokens, "train_tokens": trainTokens, "validation_tokens": validationTokens,
            "documents_with_statements": withStatements, "eligible_documents": slotDoc.count, "statement_slots": slots,
            "tail_documents": tail.count, "redraws": redraws, "statements_moved": moved, "vocab_size": vocab.count,
        ]
        let shares = ["token_share": share, "train_token_share": Double(factTokens) / Double(trainTokens),
                      "word_share": Double(factWords) / Double(scan.words + factWords)]
        let hint = FactsPretrainHint(corpus: corpusFile, vocab: vocabFile, valFraction: o.valFraction, trainTokens: trainTokens,
                                     note: "pretrain --corpus <dir>/\(corpusFile) --vocab <dir>/\(vocabFile) --tokens \(trainTokens) or more "
                                         + "(a single pass over the training part; fewer tokens see a random part of it)"
                                         + (o.valFraction == PretrainOptions().valFraction ? "" : " --val-fraction \(o.valFraction)"))
        let manifest = FactsManifest(settings: settings, pretrain: hint, counts: counts, shares: shares, buckets: buckets,
                                     relations: relationCounts, dropped: dropped, inputs: inputHashes, files: hashes)
        let menc = JSONEncoder()
        menc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try AtomicFile.write(try menc.encode(manifest), to: manifestPath)
        log(String(format: "corpus facts: done in %.0fs", Date().timeIntervalSince(started)))
        return (.written, manifest)
    }
}

/// Buffered lines to a file (the corpus's temporary file); `abandon` removes it.
final class LineWriter {
    let path: String
    let fd: Int32
    var buffer: [UInt8] = []
    var closed = false
    private(set) var bytes = 0
    init(_ path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FactsCorpusError("\(path): cannot write (\(String(cString: strerror(errno))))") }
        buffer.reserveCapacity(1 << 21)
    }
    func line(_ s: String) throws {
        buffer.append(contentsOf: s.utf8); buffer.append(0x0A)
        if buffer.count >= 1 << 20 { try flush() }
    }
    func flush() throws {
        var done = 0
        try buffer.withUnsafeBytes { raw in
            while done < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FactsCorpusError("\(path): cannot write (\(String(cString: strerror(errno))))")
                }
                done += n
            }
        }
        bytes += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }
    func close() throws {
        try flush()
        closed = true
        guard Foundation.close(fd) == 0 else { throw FactsCorpusError("\(path): cannot write (\(String(cString: strerror(errno))))") }
    }
    func abandon() {
        if !closed { _ = Foundation.close(fd); closed = true }
        unlink(path)
    }
}
