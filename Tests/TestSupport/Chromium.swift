// Headless Chromium for the tests that open a page droplab writes (the explorer, `report --html`):
// a screenshot or the DOM after the page's scripts ran. `make test` installs Chromium; without it
// these tests skip.

import Foundation
import XCTest

public struct Chromium {
    public let executable: String
    /// Its profile and the screenshots go here.
    public let directory: String

    /// The installed Chromium, or an XCTSkip saying it is missing.
    public init(directory: String) throws {
        guard let exe = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
            .first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw XCTSkip("chromium is not installed (make test installs it)")
        }
        executable = exe; self.directory = directory
    }

    /// Run Chromium headless on `page` (a file) with `args`, at most 180 s.
    public func run(_ args: [String], page: String) throws -> CLIResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(directory)/chromium-profile",
                       "--enable-logging=stderr", "--v=0"] + args + [URL(fileURLWithPath: page).absoluteString]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let timer = DispatchWorkItem { p.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 180, execute: timer)
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        timer.cancel()
        return CLIResult(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                         stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// The page's console messages and uncaught errors in a run's log.
    public static func consoleMessages(_ r: CLIResult) -> [String] {
        r.stderr.split(separator: "\n").filter { $0.contains(":CONSOLE") || $0.contains("Uncaught") }.map(String.init)
    }
}

/// A page that loads nothing from outside: no http(s) address but the SVG namespace, no src=.
public func loadsNothingFromOutside(_ html: String) -> Bool {
    let outside = html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")   // the SVG namespace, not a request
    return !(outside.contains("http://") || outside.contains("https://") || outside.contains(" src="))
}
