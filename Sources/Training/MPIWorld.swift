// The processes of an `mpirun` job (OpenMPI's MPI_COMM_WORLD), for data-parallel pretraining
// and recipe jobs spread over ranks. MPI is initialised only when `mpirun` started the process
// (OMPI_COMM_WORLD_SIZE is set): a process started without it runs exactly as before and never
// calls into MPI (OpenMPI's singleton init works, but costs about a second per command).
//
// Failures: MPI errors are returned, not fatal (MPI_ERRORS_RETURN), and become one-line
// errors. When a rank dies or exits with an error, mpirun ends the job by sending SIGTERM to
// the others (measured with OpenMPI 4.1: within a second); each of them then prints one line
// saying so and exits, so no rank waits forever in a collective. A rank that succeeds calls
// MPI_Finalize (`finish`); one that fails must not (finalize waits for the others), it exits.

import CMPI
import Foundation

public struct MPIError: Error, CustomStringConvertible {
    public let description: String
}

public final class MPIWorld: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    let comm: MPI_Comm?   // (imported as optional; never nil)

    /// The job this process is a rank of, when mpirun started it; nil otherwise.
    public static let launched: MPIWorld? = start()

    private init(rank: Int, size: Int, comm: MPI_Comm?) { self.rank = rank; self.size = size; self.comm = comm }

    private static func start() -> MPIWorld? {
        guard ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil else { return nil }
        guard MPI_Init(nil, nil) == MPI_SUCCESS else { return nil }
        let comm = droplab_mpi_comm_world()
        MPI_Comm_set_errhandler(comm, droplab_mpi_errors_return())
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(comm, &rank); MPI_Comm_size(comm, &size)
        terminated = strdup("droplab: error: rank \(rank): stopped by SIGTERM (mpirun ends the job when one of its ranks fails or is killed)\n")
        signal(SIGTERM) { _ in
            if let m = MPIWorld.terminated { _ = write(2, m, strlen(m)) }
            _exit(143)
        }
        return MPIWorld(rank: Int(rank), size: Int(size), comm: comm)
    }

    /// The SIGTERM line, built before the handler may need it (a handler may not allocate).
    nonisolated(unsafe) private static var terminated: UnsafeMutablePointer<CChar>? = nil

    /// Shut MPI down after a successful command (no-op without mpirun).
    public static func finish() { if launched != nil { MPI_Finalize() } }

    private func check(_ rc: Int32, _ what: String) throws {
        guard rc != MPI_SUCCESS else { return }
        var buf = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var len: Int32 = 0
        MPI_Error_string(rc, &buf, &len)
        throw MPIError(description: "rank \(rank): \(what) failed: \(String(cString: buf))")
    }

    /// Sum `count` floats over all ranks, in place (MPI_Allreduce), in chunks that fit an Int32 count.
    public func sum(_ values: UnsafeMutablePointer<Float>, count: Int) throws {
        var offset = 0
        while offset < count {
            let n = min(count - offset, Int(Int32.max))
            try check(MPI_Allreduce(droplab_mpi_in_place(), values + offset, Int32(n), droplab_mpi_float(), droplab_mpi_sum(), comm),
                      "MPI_Allreduce")
            offset += n
        }
    }

    /// Elementwise sum (or maximum) of `values` over all ranks.
    public func reduce(_ values: [Double], max: Bool = false) throws -> [Double] {
        var v = values
        try check(MPI_Allreduce(droplab_mpi_in_place(), &v, Int32(v.count), droplab_mpi_double(),
                                max ? droplab_mpi_max() : droplab_mpi_sum(), comm), "MPI_Allreduce")
        return v
    }

    public func barrier() throws { try check(MPI_Barrier(comm), "MPI_Barrier") }

    /// Send `bytes` to rank `to` with `tag`.
    public func send(_ bytes: [UInt8], to: Int, tag: Int) throws {
        var b = bytes
        try check(MPI_Send(&b, Int32(b.count), droplab_mpi_char(), Int32(to), Int32(tag), comm), "MPI_Send")
    }

    /// The next message from any rank: (source, tag, bytes). Polls every 20 ms instead of
    /// blocking, because OpenMPI's blocking receive spins a core while it waits.
    public func receive() throws -> (source: Int, tag: Int, bytes: [UInt8]) {
        var status = MPI_Status(), flag: Int32 = 0
        while true {
            try check(MPI_Iprobe(droplab_mpi_any_source(), droplab_mpi_any_tag(), comm, &flag, &status), "MPI_Iprobe")
            if flag != 0 { break }
            usleep(20_000)
        }
        var count: Int32 = 0
        MPI_Get_count(&status, droplab_mpi_char(), &count)
        var bytes = [UInt8](repeating: 0, count: Int(count))
        try check(MPI_Recv(&bytes, count, droplab_mpi_char(), status.MPI_SOURCE, status.MPI_TAG, comm, &status), "MPI_Recv")
        return (Int(status.MPI_SOURCE), Int(status.MPI_TAG), bytes)
    }
}
