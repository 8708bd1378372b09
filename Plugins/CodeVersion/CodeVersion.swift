// Bakes the code version into the Recipes module at build time: tools/code_version.sh writes
// BuildInfo.swift (the sha256 of the sources, and the git commit when git knows one). The
// command's inputs are every source file of the package, Package.swift and the script, so it
// runs again whenever one of them changes.

import Foundation
import PackagePlugin

@main
struct CodeVersion: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let package = context.package.directoryURL
        let script = package.appendingPathComponent("tools/code_version.sh")
        let out = context.pluginWorkDirectoryURL.appendingPathComponent("BuildInfo.swift")
        let sources = context.package.targets.compactMap { $0 as? SourceModuleTarget }.flatMap { $0.sourceFiles.map(\.url) }
        return [.buildCommand(displayName: "Code version of \(package.path)",
                              executable: URL(fileURLWithPath: "/bin/sh"),
                              arguments: [script.path, package.path, out.path],
                              inputFiles: [script, package.appendingPathComponent("Package.swift")] + sources,
                              outputFiles: [out])]
    }
}
