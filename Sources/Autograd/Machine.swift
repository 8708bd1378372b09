// The CPU this process runs on and the kernels its products use, so every figure and every
// run can name them, and so the fp32 products run the best OpenBLAS kernel the CPU has.
//
// OpenBLAS (Debian's DYNAMIC_ARCH build) picks its kernel from a table of CPU models when the
// library loads, before `main`. A CPU newer than the table (an Intel Xeon with AVX-512 and
// AVX512-FP16, under OpenBLAS 0.3.21) gets the generic Prescott (SSE3) kernels: 33 GFLOP/s
// where its SkylakeX kernel gives 157 (measured there, sgemm 2048^3). OpenBLAS reads
// OPENBLAS_CORETYPE only at load time, so `ensureBestBLASKernel` re-executes the process once
// with it set to the kernel the CPU's *features* allow. A user's own OPENBLAS_CORETYPE is
// always respected.

import CBLAS
import CDNNL
import Foundation

public enum Machine {
    /// The CPU's model name and feature flags (Linux: /proc/cpuinfo; elsewhere unknown, empty).
    public struct CPU: Sendable {
        public var model: String
        public var flags: Set<String>
        /// "family 25, model 1" (the model name alone can be the same for two generations under a
        /// hypervisor: "AMD EPYC" for a Zen 3 and a Zen 4); "unknown" when not given.
        public var identity = "unknown"

        /// The vector ISA levels droplab cares about, as a short list ("AVX2, AVX-512, AVX512-BF16").
        public var isaSummary: String {
            var parts: [String] = []
            if flags.contains("avx2") { parts.append("AVX2") }
            if flags.isSuperset(of: Machine.avx512Flags) { parts.append("AVX-512") }
            if flags.contains("avx512_bf16") { parts.append("AVX512-BF16") }
            if flags.contains("avx512_fp16") { parts.append("AVX512-FP16") }
            if flags.contains("amx_tile") { parts.append("AMX") }
            return parts.isEmpty ? "no AVX2" : parts.joined(separator: ", ")
        }
    }

    public static let cpu: CPU = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return CPU(model: "unknown", flags: []) }
        func field(_ name: String) -> String? {
            for line in text.split(separator: "\n") where line.hasPrefix(name) {
                if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
            }
            return nil
        }
        let identity = field("cpu family").flatMap { f in field("model\t").map { "family \(f), model \($0)" } } ?? "unknown"
        return CPU(model: field("model name") ?? "unknown", flags: Set((field("flags") ?? "").split(separator: " ").map(String.init)),
                   identity: identity)
    }()

    /// The AVX-512 subsets OpenBLAS's SkylakeX kernels use.
    static let avx512Flags: Set<String> = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

    /// OpenBLAS's kernel in this process ("Cooperlake", "SkylakeX", "Haswell", "Prescott", ...).
    public static var openBLASCore: String { String(cString: openblas_get_corename()) }

    /// oneDNN's effective ISA (what its bf16 products dispatch to; ONEDNN_MAX_CPU_ISA caps it).
    public static var oneDNNISA: String {
        let isa = dnnl_get_effective_cpu_isa()
        let names: [(dnnl_cpu_isa_t, String)] = [
            (dnnl_cpu_isa_avx512_core_amx, "AVX512-AMX"), (dnnl_cpu_isa_avx512_core_bf16, "AVX512-BF16"),
            (dnnl_cpu_isa_avx512_core_vnni, "AVX512-VNNI"), (dnnl_cpu_isa_avx512_core, "AVX-512"),
            (dnnl_cpu_isa_avx2_vnni, "AVX2-VNNI"), (dnnl_cpu_isa_avx2, "AVX2"), (dnnl_cpu_isa_avx, "AVX"), (dnnl_cpu_isa_sse41, "SSE4.1"),
        ]
        return names.first { isa.rawValue & $0.0.rawValue == $0.0.rawValue }?.1 ?? "generic"
    }

    /// Where the OpenBLAS kernel came from: OpenBLAS's own choice, the user's OPENBLAS_CORETYPE,
    /// or droplab's re-execution (naming the fallback it replaced).
    public static var openBLASCoreSource: String {
        let env = ProcessInfo.processInfo.environment
        if let from = env[replacedCoreVariable] { return "chosen by droplab from the CPU's features; OpenBLAS's own choice was \(from)" }
        if let forced = env["OPENBLAS_CORETYPE"], !forced.isEmpty {
            // set by hand or by the machine's environment: kept, but a narrower kernel than the CPU runs is named
            return "OPENBLAS_CORETYPE=\(forced)" + (betterOpenBLASCore(current: forced, flags: cpu.flags).map { "; the CPU can run \($0), droplab's choice without it" } ?? "")
        }
        return "OpenBLAS's own choice"
    }

    /// "Cooperlake (OpenBLAS's own choice)": the line every figure carries.
    public static var openBLASDescription: String { "\(openBLASCore) (\(openBLASCoreSource))" }

    /// The environment variable that records which kernel the re-execution replaced.
    static let replacedCoreVariable = "DROPLAB_OPENBLAS_REPLACED"

    /// OpenBLAS core types by the widest vector ISA their kernels use.
    static let avx512Cores: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]
    static let avx2Cores: Set<String> = ["haswell", "zen"]

    /// The core type OpenBLAS should use instead of `current` on a CPU with `flags`, or nil when
    /// `current` already uses the CPU's widest ISA (or the CPU has no AVX2): AVX-512 CPUs get
    /// Cooperlake (with AVX512-BF16) or SkylakeX, AVX2 + FMA CPUs get Haswell.
    public static func betterOpenBLASCore(current: String, flags: Set<String>) -> String? {
        let c = current.lowercased()
        if flags.isSuperset(of: avx512Flags) {
            return avx512Cores.contains(c) ? nil : flags.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX"
        }
        if flags.isSuperset(of: ["avx2", "fma"]) {
            return avx512Cores.contains(c) || avx2Cores.contains(c) ? nil : "Haswell"
        }
        return nil
    }

    /// Re-execute this process once with OPENBLAS_CORETYPE set when OpenBLAS runs a kernel below
    /// what the CPU supports (a generic fallback for a CPU missing from its table). Call first
    /// thing in `main`, before any thread or MPI starts. No-op when OPENBLAS_CORETYPE is set (the
    /// user's choice, or this re-execution's), off Linux, or when the kernel is already the best.
    public static func ensureBestBLASKernel() {
        #if os(Linux)
        let env = ProcessInfo.processInfo.environment
        guard (env["OPENBLAS_CORETYPE"] ?? "").isEmpty, let better = betterOpenBLASCore(current: openBLASCore, flags: cpu.flags) else { return }
        setenv(replacedCoreVariable, openBLASCore, 1)
        setenv("OPENBLAS_CORETYPE", better, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // only reached when exec failed: carry on with the fallback kernel, and say so
        unsetenv("OPENBLAS_CORETYPE"); unsetenv(replacedCoreVariable)
        FileHandle.standardError.write(Data("droplab: warning: could not re-execute with OPENBLAS_CORETYPE=\(better) (\(String(cString: strerror(errno)))); the products run OpenBLAS's \(openBLASCore) kernel\n".utf8))
        #endif
    }

    /// The machine's description as (snake_case key, value) pairs: `droplab inspect --system` and
    /// `droplab bench` print them as `key: value` lines, `bench --json` records them.
    public static var summary: [(String, String)] {
        [("cpu", cpu.model), ("cpu_id", cpu.identity), ("cpu_features", cpu.isaSummary), ("cores", String(ProcessInfo.processInfo.activeProcessorCount)),
         ("kernel_threads", String(Parallel.threads)), ("openblas_core", openBLASDescription), ("onednn_isa", oneDNNISA),
         ("bf16", BF16.isSupported ? "yes (AVX512-BF16)" : "no (the CPU, or ONEDNN_MAX_CPU_ISA, lacks AVX512-BF16)")]
    }
}
