import ArgumentParser
import Foundation
import Recipes
import Training

struct RecipeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recipe",
        abstract: "Run a study recipe (recipes/*.toml): pretraining per variant and seed, then its evaluators.",
        subcommands: [Run.self, List.self])

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run",
            abstract: "Resolve a recipe into jobs and run those not done, one after another (under mpirun: rank 0 hands them to the other ranks).",
            discussion: """
                Job directories are <root>/recipes/<recipe>/<kind>-<hash>/, the hash of the resolved configuration \
                (but for log-every, save-every and eval-every) and of the datasets' contents: finished jobs (done.json) \
                are skipped and an interrupted pretraining resumes from its last.h5. The recipe is checked completely (keys, values, \
                presets, datasets) before any job starts. A job that fails is logged and the others go on (the \
                evaluators of a failed pretraining are not started); the command fails at the end, naming the failed \
                jobs. --dry-run marks finished jobs made by older code.
                """)
        @Argument(help: "Recipe file (TOML).") var recipe: String
        @Flag(help: "List the jobs and their state; run nothing.") var dryRun = false
        @Option(parsing: .upToNextOption,
                help: "Only these jobs (and the pretraining they need): a name part (pretrain, nodrop, seed0), a glob over kind/variant/seedN, or a job directory name.")
        var only: [String] = []
        @Option(help: "Checkpoints root: jobs in <root>/recipes/<recipe>/, caches in <root>/cache.") var root = "checkpoints"
        @Option(help: "Kernel threads per job (default: the cores, shared among the ranks mpirun starts on this machine).") var threads: Int?
        @Flag(help: "Under mpirun: run each pretraining on all ranks together (data parallel; its accumulation must divide over the ranks), then the evaluators on ranks 1...N-1.")
        var dataParallel = false
        @Option(help: "Where the committed job copies are (<recipe>-jobs): the listing marks the jobs done there, on another machine; a pretraining done there and run here is compared with its copy (the same model or not).")
        var reports = "reports"

        func run() throws {
            try useThreads(threads)
            let world = MPIWorld.launched.flatMap { $0.size > 1 ? $0 : nil }
            if dataParallel && world == nil { throw ValidationError("--data-parallel: needs mpirun with 2 or more ranks (mpirun -np N droplab recipe run ...)") }
            let r = try Recipe(path: recipe, digests: DataDigests(cacheFile: RecipeRunner.digestCache(root: root)))
            if let world, dataParallel { try RecipeRunner.checkDataParallel(r, ranks: world.size) }
            if let world, world.rank != 0 {   // a worker: runs the jobs rank 0 hands it, silently
                if !dryRun { try RecipeRunner(recipe: r, root: root, log: { _ in }).serve(world) }
                return
            }
            let runner = RecipeRunner(recipe: r, root: root, log: log)
            let selected = try runner.select(only)
            let saved = reports + "/" + r.name + "-jobs"
            let committed = FileManager.default.fileExists(atPath: saved) ? RecipeRunner(recipe: r, root: root, jobs: saved, log: log) : nil
            runner.committed = committed
            if dryRun { print(runner.listing(selected, committed: committed)); return }
            log(runner.listing(selected, committed: committed))
            do {
                let s = try runner.run(selected, world: world, dataParallel: dataParallel)
                print("recipe \(r.name): \(selected.count) jobs: \(s.ran) run, \(s.skipped) already done; report: droplab report \(recipe)"
                      + (root == "checkpoints" ? "" : " --root \(root)"))
            } catch let e as RecipeInterrupted {
                log(e.description)
                throw ExitCode(130)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list",
            abstract: "List the recipes in a directory with their variants, seeds, evaluators and job states.")
        @Argument(help: "Directory of recipes.") var directory = "recipes"
        @Option(help: "Checkpoints root.") var root = "checkpoints"
        @Option(help: "Where reports and their committed job copies (<recipe>-jobs) are.") var reports = "reports"

        func run() throws {
            let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".toml") }.sorted()
            guard !names.isEmpty else { throw ValidationError("\(directory): no .toml recipes") }
            let digests = DataDigests(cacheFile: RecipeRunner.digestCache(root: root))
            for n in names {
                let path = directory + "/" + n
                do {
                    let r = try Recipe(path: path, digests: digests)
                    let runner = RecipeRunner(recipe: r, root: root, log: log)
                    let done = r.jobs.filter { runner.state($0) == .done }.count
                    // the committed copies a report reads (`report --save-jobs` writes them, `report --jobs` reads them)
                    let saved = reports + "/" + r.name + "-jobs"
                    var committed = ""
                    if FileManager.default.fileExists(atPath: saved) {
                        let copies = RecipeRunner(recipe: r, root: root, jobs: saved, log: log)
                        committed = "; \(r.jobs.filter { copies.state($0) == .done }.count)/\(r.jobs.count) in \(saved) (droplab report \(path) --jobs \(saved))"
                    }
                    print("\(path): \(r.variants.count) variants (\(r.variants.map(\.id).joined(separator: ", "))) x \(r.seeds.count) seeds, "
                          + "evaluators: \(r.evaluators.map(\.evaluator.name).joined(separator: ", ")); \(done)/\(r.jobs.count) jobs done in \(runner.recipeDir)"
                          + committed)
                } catch {
                    print("\(path): invalid: \(error)")
                }
            }
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report",
        abstract: "Write reports/<recipe>.md (tables over seeds, paired t-tests, provenance) and SVG curves from a recipe's stored results.",
        discussion: "Reads only the job directories, so regenerating gives byte-identical files. Missing jobs are listed, not run.")
    @Argument(help: "Recipe file (TOML).") var recipe: String
    @Option(help: "Checkpoints root the recipe ran in.") var root = "checkpoints"
    @Option(help: "Output directory.") var out = "reports"
    @Option(help: "Read the job directories from this directory instead of <root>/recipes/<recipe>/ (e.g. the copies --save-jobs keeps).")
    var jobs: String?
    @Flag(help: "First copy the files the report reads (job.json, done.json, metrics.jsonl, result.json, records; no checkpoints) of every finished job to <out>/<recipe>-jobs/ (a job finished here replaces its copy; copies of jobs not finished here, e.g. run on another machine, are kept), then report from those copies; --jobs <out>/<recipe>-jobs regenerates the report on a machine without the checkpoints.")
    var saveJobs = false
    @Flag(help: "Also write <recipe>.html: the same report as one self-contained page (figures inline, tables sortable by a click on a column header, nothing loaded from outside).")
    var html = false

    func run() throws {
        let r = try Recipe(path: recipe, digests: DataDigests(cacheFile: RecipeRunner.digestCache(root: root)))
        if let jobs {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: jobs, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("--jobs: \(jobs) is not a directory")
            }
        }
        let saved = out + "/" + r.name + "-jobs"
        if saveJobs, let jobs, URL(fileURLWithPath: jobs).standardizedFileURL == URL(fileURLWithPath: saved).standardizedFileURL {
            throw ValidationError("--save-jobs: would replace \(jobs), which --jobs reads")
        }
        var runner = RecipeRunner(recipe: r, root: root, jobs: jobs, log: log)
        if saveJobs {   // this machine's finished jobs join the copies; the report reads the copies
            let bytes = try Report.saveJobs(r, runner: runner, to: saved)
            runner = RecipeRunner(recipe: r, root: root, jobs: saved, log: log)
            print("job files: \(saved) (\(r.jobs.filter { runner.state($0) == .done }.count) jobs, \(bytes / 1024) KiB)")
        }
        var report = try Report.build(r, runner: runner, name: r.name)
        if html { report.files.append((r.name + ".html", report.html)) }
        let paths = try Report.write(report, to: out)
        let done = r.jobs.filter { runner.state($0) == .done }.count
        print("report: \(paths.joined(separator: ", ")) (\(done)/\(r.jobs.count) jobs done)")
    }
}
