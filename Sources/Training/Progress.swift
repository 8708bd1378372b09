// Progress output: a redrawn bar with tokens/s, loss and ETA when stderr is a terminal,
// plain lines otherwise.

import Foundation

final class Progress {
    let total: Int
    let first: Int          // the step this process started at (ETA counts only its own steps)
    let start = Date()
    let tty = isatty(STDERR_FILENO) != 0
    let log: (String) -> Void

    init(total: Int, from first: Int, log: @escaping (String) -> Void) { self.total = total; self.first = first; self.log = log }

    func update(step: Int, metrics: [(String, Any)]) {
        let elapsed = Date().timeIntervalSince(start)
        let eta = step > first ? elapsed / Double(step - first) * Double(max(total - step, 0)) : 0
        let shown = metrics.filter { ["train_loss", "val_loss", "tokens_per_s", "lr"].contains($0.0) }
            .map { k, v in "\(k) \(format(v))" }.joined(separator: "  ")
        if tty {
            let width = 24, filled = total > 0 ? width * step / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            FileHandle.standardError.write("\r[\(bar)] \(step)/\(total)  \(shown)  ETA \(duration(eta))\u{1B}[K".data(using: .utf8)!)
        } else {
            log("step \(step)/\(total)  \(shown)  elapsed \(duration(elapsed))  ETA \(duration(eta))")
        }
    }

    func finish() { if tty { FileHandle.standardError.write("\n".data(using: .utf8)!) } }

    func format(_ v: Any) -> String {
        switch v {
        case let d as Double: return d >= 100 ? String(format: "%.0f", d) : String(format: "%.4g", d)
        case let f as Float: return String(format: "%.3g", Double(f))
        default: return "\(v)"
        }
    }
}

func duration(_ s: Double) -> String {
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t / 60 % 60) : String(format: "%dm%02ds", t / 60, t % 60)
}
