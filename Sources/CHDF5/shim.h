#ifndef DROPLAB_CHDF5_SHIM_H
#define DROPLAB_CHDF5_SHIM_H

// HDF5 exposes many constants as macros that expand to global variables (after an
// H5open() call) or casts; Swift cannot import those, so wrap them in functions.
#include <hdf5.h>

static inline hid_t dl_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t dl_H5S_ALL(void) { return H5S_ALL; }
static inline hid_t dl_H5E_DEFAULT(void) { return H5E_DEFAULT; }
static inline hid_t dl_H5P_LINK_CREATE(void) { return H5P_LINK_CREATE; }
static inline hid_t dl_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }

static inline hid_t dl_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t dl_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t dl_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t dl_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t dl_H5T_C_S1(void) { return H5T_C_S1; }
static inline size_t dl_H5T_VARIABLE(void) { return H5T_VARIABLE; }

static inline unsigned dl_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned dl_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned dl_H5F_ACC_EXCL(void) { return H5F_ACC_EXCL; }

/// Stop HDF5 from printing its error stack to stderr; failures are reported through
/// return values and turned into Swift errors instead.
static inline void dl_H5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

#endif
