#ifndef DROPLAB_CDNNL_SHIM_H
#define DROPLAB_CDNNL_SHIM_H

// oneDNN (Debian libdnnl-dev, no pkg-config file) for the bf16 matrix products.
#include <oneapi/dnnl/dnnl.h>

// oneDNN's Debian build runs on OpenMP (libgomp). droplab calls it from its own threads, one
// OpenMP thread each (omp.h is not on clang's include path, so the one function is declared here).
void omp_set_num_threads(int);

#endif
