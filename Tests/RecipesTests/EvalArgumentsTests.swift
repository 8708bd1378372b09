// `droplab eval NAME`: every evaluator's command line comes from its one declaration (the
// options struct, its aliases and its `OptionHelp`), so the command-line defaults, the recipe
// defaults and the help agree by construction; this asserts it for the whole registry, and
// checks how words are read (lists, switches, `all`/`unset`) and what a bad flag says.

import Datasets
import Evaluators
import Foundation
@testable import Recipes
import XCTest

final class EvalArgumentsTests: XCTestCase {
    func object(_ d: Data) throws -> [String: Any] { try JSONSerialization.jsonObject(with: d) as! [String: Any] }

    func testEveryEvaluatorsFlagsDefaultsAndHelpComeFromItsOneDeclaration() throws {
        XCTAssertEqual(EvaluatorRegistry.names.count, 17)
        for e in EvaluatorRegistry.all {
            // no flags: exactly the struct's defaults (what a recipe table starts from)
            XCTAssertEqual(try e.commandLine([]), e.defaultsJSON, e.name)
            let flags = Set(e.flagHelp.map { String($0.flag.dropFirst(2).prefix { $0 != " " }) })
            // every key a recipe may set is a flag (the command line adds the keys recipes fill in: data-dir, seed, ...)
            XCTAssertTrue(e.recipeKeys.isSubset(of: flags), "\(e.name): recipe keys without a flag: \(e.recipeKeys.subtracting(flags).sorted())")
            // an evaluator that reads probes has every probe option as a flag (its nil optionals included)
            let defaults = try object(e.defaultsJSON) as? [String: Any] ?? [:]
            if defaults["source"] != nil || (defaults["edit"] as? [String: Any])?["probes"] != nil {
                let probeFlags = Set(Mirror(reflecting: ProbeOptions()).children.compactMap(\.label).map(KeyStyle.kebab))
                XCTAssertTrue(probeFlags.isSubset(of: flags), "\(e.name): probe options without a flag: \(probeFlags.subtracting(flags).sorted())")
            }
            for row in e.flagHelp {
                let flag = String(row.flag.prefix { $0 != " " })
                // every flag has its one line of help, and the default help shows is the default: fed back, it changes nothing
                let text = row.text
                XCTAssertFalse(text.hasPrefix(" (default:"), "\(e.name) \(flag): no help text")
                guard let open = text.range(of: " (default: ", options: .backwards) else { XCTFail("\(e.name) \(flag): no default"); continue }
                let shown = String(text[open.upperBound...].dropLast())
                let isSwitch = !row.flag.contains("<")
                let args = isSwitch ? [shown == "true" ? flag : "--no-" + flag.dropFirst(2)]
                    : shown == "none" ? [flag] : [flag, shown]
                XCTAssertEqual(try object(e.commandLine(args)) as NSDictionary, try object(e.defaultsJSON) as NSDictionary,
                               "\(e.name): \(args) should give the defaults")
            }
        }
    }

    func testWordsAreReadAsTheirPropertiesTypes() throws {
        let lora = EvaluatorRegistry.named("lora")!, memit = EvaluatorRegistry.named("memit")!, kn = EvaluatorRegistry.named("kn")!
        let l = try object(lora.commandLine(["--ranks", "4,2", "1", "--concepts", "all", "--concept", "paris", "--concept", "rome",
                                             "--lr=0.25", "--seed", "18446744073709551615"]))
        XCTAssertEqual(l["ranks"] as? [Int], [4, 2, 1])
        let edit = l["edit"] as! [String: Any]
        XCTAssertNil(edit["concepts"], "all: the struct's nil")
        XCTAssertEqual(edit["concept"] as? [String], ["paris", "rome"], "a list flag given twice accumulates")
        XCTAssertEqual(edit["lr"] as? Double, 0.25)
        XCTAssertEqual((edit["probes"] as! [String: Any])["seed"] as? UInt64, UInt64.max)
        XCTAssertEqual(try object(memit.commandLine(["--no-sequential"]))["sequential"] as? Bool, false)
        XCTAssertEqual(try object(memit.commandLine(["--sequential", "false"]))["sequential"] as? Bool, false)
        // an optional switch: bare is true, --no- false, unset nil, and the next flag is not its value
        func knownOnly(_ args: [String]) throws -> Any? { (try object(kn.commandLine(args))["source"] as! [String: Any])["knownOnly"] }
        XCTAssertEqual(try knownOnly(["--known-only", "--limit", "3"]) as? Bool, true)
        XCTAssertEqual(try knownOnly(["--known-only"]) as? Bool, true)
        XCTAssertEqual(try knownOnly(["--no-known-only"]) as? Bool, false)
        XCTAssertEqual(try knownOnly(["--known-only", "false"]) as? Bool, false)
        XCTAssertNil(try knownOnly(["--known-only", "true", "--known-only", "unset"]))
        let k = try object(kn.commandLine(["--limit", "3", "--limit", "7", "--alphas", "0.5,1", "--probes", "unset", "--relations", "P17", "P19"]))
        let source = k["source"] as! [String: Any]
        XCTAssertEqual(source["limit"] as? Int, 7, "a repeated scalar flag: the last wins (a script can override a base command line)")
        XCTAssertNil(source["probes"], "unset: the struct's nil")
        XCTAssertEqual(source["relations"] as? [String], ["P17", "P19"])
        XCTAssertEqual(k["alphas"] as? [Double], [0.5, 1])
    }

    func testBadFlagsNameTheFlag() throws {
        let kn = EvaluatorRegistry.named("kn")!
        for (args, needle) in [(["--treshold", "0.3"], "did you mean '--threshold'?"), (["--batch", "x"], "--batch expects an integer, got 'x'"),
                               (["--batch"], "--batch needs a value"), (["--threshold", "2"], "--threshold"),
                               (["0.3"], "unexpected argument '0.3'"),
                               (["--share", "nan"], "--share expects a number"), (["--no-site"], "unknown option '--no-site'")] {
            XCTAssertThrowsError(try kn.commandLine(args), "\(args)") { XCTAssertTrue("\($0)".contains(needle), "\(args): \($0)") }
        }
    }
}
