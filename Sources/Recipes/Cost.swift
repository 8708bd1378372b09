// What a recipe's jobs cost: the wall time of each kind of job on each machine it ran on,
// measured from the finished jobs, and the wall time the whole recipe, and what remains of it,
// would take on 1, 4 and 16 machines at those costs, with the jobs handed out the way
// `recipe run` under mpirun hands them out (RecipeRunner.dispatch).

import Foundation

enum Cost {
    /// The wall time of running jobs of `durations` on `workers` ranks as `dispatch` does: in
    /// order, each to the next free rank once the job it depends on (an index into these jobs,
    /// or nil when it has none or it is already done) has finished.
    static func makespan(_ durations: [Double], dependsOn: [Int?], workers: Int) -> Double {
        precondition(workers > 0 && durations.count == dependsOn.count)
        var finish = [Double](repeating: .infinity, count: durations.count)
        var free = [Double](repeating: 0, count: workers)   // when each rank is next free
        var queue = Array(durations.indices), now = 0.0
        while !queue.isEmpty {
            if let r = free.indices.first(where: { free[$0] <= now }),
               let q = queue.firstIndex(where: { j in dependsOn[j].map { finish[$0] <= now } ?? true }) {
                let j = queue.remove(at: q)
                finish[j] = now + durations[j]
                free[r] = finish[j]
                continue
            }
            // the next rank to come free (there is one while jobs wait: a waiting job's pretraining is running)
            guard let next = free.filter({ $0 > now }).min() else { preconditionFailure("jobs wait on jobs that never run") }
            now = next
        }
        return finish.max() ?? 0
    }

    static let machineCounts = [1, 4, 16]

    /// The report's "Cost" section: seconds per job by kind and machine, and the projections.
    static func section(_ recipe: Recipe, runs: [Report.Run]) -> String {
        guard !runs.isEmpty else { return "" }
        let machines = Array(Set(runs.map(\.done.machine.description))).sorted()
        let kinds = recipe.kinds
        var md = "\n## Cost\n\nWall time per job, by kind: the mean over the finished jobs (n), and on each machine they ran on"
        md += machines.count > 1 ? " (" + machines.enumerated().map { "machine \($0.offset + 1): \($0.element)" }.joined(separator: "; ") + ")" : " (\(machines[0]))"
        md += ". Wall times as measured: a job may have shared its machine's cores with other work (builds, tests, another job), at the kernel threads given in Provenance.\n\n"
        let columns = ["Job kind", "Done", "Mean"] + (machines.count > 1 ? machines.indices.map { "Machine \($0 + 1)" } : [])
        md += "| " + columns.joined(separator: " | ") + " |\n|" + String(repeating: "---|", count: columns.count) + "\n"
        var mean: [String: Double] = [:]
        for k in kinds {
            let all = recipe.jobs.filter { $0.kind == k }.count, done = runs.filter { $0.job.kind == k }
            if !done.isEmpty { mean[k] = Statistics.mean(done.map(\.done.seconds)) }
            md += "| \(k) | \(done.count)/\(all) | " + (mean[k].map { "\(Report.duration($0)) (\(done.count))" } ?? "–") + " |"
            if machines.count > 1 {
                for m in machines {
                    let s = done.filter { $0.done.machine.description == m }.map(\.done.seconds)
                    md += " " + (s.isEmpty ? "–" : "\(Report.duration(Statistics.mean(s))) (\(s.count))") + " |"
                }
            }
            md += "\n"
        }
        let unmeasured = kinds.filter { mean[$0] == nil }
        let finished = Set(runs.map(\.job.hash))
        // the jobs (all, or those not done) with their durations at the means, and their dependencies among them
        func projected(_ jobs: [Job]) -> String {
            let measured = jobs.filter { mean[$0.kind] != nil }
            let index = Dictionary(uniqueKeysWithValues: measured.enumerated().map { ($0.element.hash, $0.offset) })
            let durations = measured.map { mean[$0.kind]! }
            let deps = measured.map { j in j.dependsOn.flatMap { index[recipe.jobs[$0].hash] } }
            let compute = durations.reduce(0, +)
            return "\(Report.duration(compute)) of compute; "
                + machineCounts.map { n in "\(Report.duration(makespan(durations, dependsOn: deps, workers: n))) on \(counted(n, "machine"))" }
                    .joined(separator: ", ")
        }
        md += "\nProjected wall time at these means, one job at a time per machine (a rank of `mpirun`, each on its own 2-core machine), "
            + "an evaluator once its pretraining is done, in the recipe's order:\n\n"
        md += "- One model (its pretraining and every evaluator once): \(Report.duration(kinds.compactMap { mean[$0] }.reduce(0, +)))\n"
        md += "- The whole recipe (\(recipe.jobs.count) jobs): " + projected(recipe.jobs) + "\n"
        let remaining = recipe.jobs.filter { !finished.contains($0.hash) }
        if !remaining.isEmpty { md += "- What remains (\(remaining.count) jobs not done): " + projected(remaining) + "\n" }
        if !unmeasured.isEmpty {
            md += "- Not counted (no job of the kind done yet, so no cost measured): " + unmeasured.joined(separator: ", ") + "; the times above are lower bounds.\n"
        }
        return md
    }
}
