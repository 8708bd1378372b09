// OpenMPI for Swift. Its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are macros that
// take the address of library globals, which Swift cannot import: these accessors return them.
#include <mpi.h>

static inline MPI_Comm droplab_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype droplab_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype droplab_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype droplab_mpi_char(void) { return MPI_CHAR; }
static inline MPI_Op droplab_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op droplab_mpi_max(void) { return MPI_MAX; }
static inline MPI_Errhandler droplab_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline void *droplab_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int droplab_mpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline int droplab_mpi_any_tag(void) { return MPI_ANY_TAG; }
