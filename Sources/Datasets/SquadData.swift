// SQuAD v1.1 / v2.0 JSON: {"version", "data": [{"title", "paragraphs": [{"context", "qas":
// [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}.
// `answer_start` is an index in Python str positions = unicode scalars of the context.
//
// A file that is missing, empty, not JSON or without the "data" list is a one-line error.
// Single questions that cannot be used are skipped and counted by reason (reported in
// squad.json): missing id/question, duplicate id, malformed answers, unanswerable questions
// in a v1.1 run, and, for training, an answer whose answer_start does not point at its text
// (for evaluation only the answer texts matter, as in the official scripts, so such
// questions are kept and the mismatches only counted).

import Foundation

/// SQuAD v1.1 (every question answerable) or v2.0 (with unanswerable questions).
public enum SquadVersion: String, Codable, Sendable, CaseIterable {
    case v1 = "1.1"
    case v2 = "2.0"
}

public struct SquadError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public struct SquadAnswer: Sendable, Equatable {
    public var text: String
    public var start: Int          // unicode-scalar index into the context
}

public struct SquadExample: Sendable {
    public var id: String
    public var question: String
    public var context: Int        // index into SquadDataset.contexts
    public var answers: [SquadAnswer]   // [] = unanswerable (v2.0)
    public var isImpossible: Bool { answers.isEmpty }
}

public struct SquadDataset: Sendable {
    public var path: String
    public var sha256: String
    public var bytes: Int
    public var fileVersion: String?
    public var contexts: [String]
    public var examples: [SquadExample]
    /// Questions left out, by reason.
    public var skipped: [String: Int]
    /// Answers whose answer_start does not point at the answer text (kept when evaluating).
    public var answerStartMismatches: Int
    public var questionsInFile: Int

    public var skippedTotal: Int { skipped.values.reduce(0, +) }

    /// The unicode scalars of context `i`, sliced start..<end.
    public func contextText(_ i: Int, _ start: Int, _ end: Int) -> String {
        let s = contexts[i].unicodeScalars
        let a = s.index(s.startIndex, offsetBy: start), b = s.index(a, offsetBy: end - start)
        return String(s[a..<b])
    }
}

public enum SquadData {
    public enum Purpose: Sendable { case training, evaluation }

    /// Read a SQuAD file. `limit` keeps the first N usable questions (file order).
    public static func load(_ path: String, version: SquadVersion, purpose: Purpose, limit: Int? = nil) throws -> SquadDataset {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw SquadError("\(path): no such file")
        }
        guard !isDir.boolValue else { throw SquadError("\(path): is a directory, not a SQuAD JSON file") }
        guard let data = FileManager.default.contents(atPath: path) else { throw SquadError("\(path): cannot be read") }
        guard !data.isEmpty else { throw SquadError("\(path): empty file (expected SQuAD JSON)") }
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error.localizedDescription)"
            throw SquadError("\(path): not valid JSON (\(reason.split(separator: "\n").joined(separator: " ")))")
        }
        guard let top = root as? [String: Any], let articles = top["data"] as? [Any] else {
            throw SquadError("\(path): not a SQuAD file (expected a JSON object with a \"data\" list)")
        }
        var ds = SquadDataset(path: path, sha256: SHA256.hex(data), bytes: data.count, fileVersion: top["version"] as? String,
                              contexts: [], examples: [], skipped: [:], answerStartMismatches: 0, questionsInFile: 0)
        var seen = Set<String>()
        func skip(_ reason: String) { ds.skipped[reason, default: 0] += 1 }
        for (ai, a) in articles.enumerated() {
            guard let article = a as? [String: Any], let paragraphs = article["paragraphs"] as? [Any] else {
                throw SquadError("\(path): data[\(ai)] is not an article with a \"paragraphs\" list")
            }
            for (pi, p) in paragraphs.enumerated() {
                guard let para = p as? [String: Any], let context = para["context"] as? String, let qas = para["qas"] as? [Any] else {
                    throw SquadError("\(path): data[\(ai)].paragraphs[\(pi)] needs a \"context\" string and a \"qas\" list")
                }
                let scalars = Array(context.unicodeScalars)
                var contextIndex: Int? = nil
                for q in qas {
                    ds.questionsInFile += 1
                    if let limit, ds.examples.count >= limit { continue }
                    guard let qa = q as? [String: Any], let id = qa["id"] as? String, !id.isEmpty else { skip("question without an id"); continue }
                    guard let question = qa["question"] as? String,
                          !question.unicodeScalars.allSatisfy({ $0.properties.isWhitespace }) else { skip("empty or missing question"); continue }
                    guard !seen.contains(id) else { skip("duplicate question id"); continue }
                    guard let rawAnswers = qa["answers"] as? [Any] else { skip("missing answers list"); continue }
                    var answers: [SquadAnswer] = []
                    var malformed = false, mismatch = false
                    for r in rawAnswers {
                        guard let ans = r as? [String: Any], let text = ans["text"] as? String,
                              let n = ans["answer_start"] as? NSNumber, n.doubleValue == Double(n.intValue) else {
                            malformed = true; break
                        }
                        let start = n.intValue
                        let t = Array(text.unicodeScalars)
                        if t.isEmpty { malformed = true; break }
                        if start < 0 || start + t.count > scalars.count || !scalars[start..<start + t.count].elementsEqual(t) { mismatch = true }
                        answers.append(SquadAnswer(text: text, start: start))
                    }
                    if malformed { skip("malformed answer (needs a non-empty text and an integer answer_start)"); continue }
                    let impossible = (qa["is_impossible"] as? Bool) ?? false
                    if impossible && purpose == .training { answers = [] }   // v2.0 lists no answers for these; ignore any given
                    if answers.isEmpty && !impossible && purpose == .training { skip("no answers"); continue }
                    if answers.isEmpty && version == .v1 { skip("unanswerable question (not scored in a v1.1 run)"); continue }
                    if mismatch && !answers.isEmpty {
                        if purpose == .training { skip("answer_start does not match the context text"); continue }
                        ds.answerStartMismatches += 1
                    }
                    if contextIndex == nil { ds.contexts.append(context); contextIndex = ds.contexts.count - 1 }
                    seen.insert(id)
                    ds.examples.append(SquadExample(id: id, question: question, context: contextIndex!, answers: answers))
                }
            }
        }
        guard !ds.examples.isEmpty else {
            let why = ds.skipped.isEmpty ? "" : " (skipped: " + ds.skipped.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ")"
            throw SquadError("\(path): no usable questions\(why)")
        }
        return ds
    }
}
