// Bakes the code version into the Recipes module at build time: tools/code_version.sh writes
// BuildInfo.swift (the sha256 of the sources, and the git commit when git knows one) before
// every build, and rewrites it only when it changes.

import Foundation
import PackagePlugin

@main
struct CodeVersion: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let package = context.package.directoryURL
        let out = context.pluginWorkDirectoryURL.appendingPathComponent("generated")
        return [.prebuildCommand(displayName: "Code version of \(package.path)",
                                 executable: URL(fileURLWithPath: "/bin/sh"),
                                 arguments: [package.appendingPathComponent("tools/code_version.sh").path, package.path, out.path],
                                 outputFilesDirectory: out)]
    }
}
