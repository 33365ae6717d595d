/* lapack.h - the LAPACK routines the built-in embedder calls, as OpenBLAS
 * exports them. Debian's OpenBLAS carries LAPACK's Fortran symbols but no
 * lapacke.h, so they are declared here with Fortran's conventions: every
 * argument by pointer, column-major matrices, and after the arguments the
 * hidden length of each CHARACTER argument (gfortran passes them as
 * size_t; leaving them out is undefined behaviour that newer compilers
 * exploit). */
#ifndef SLUICE_STEPS_LAPACK_H
#define SLUICE_STEPS_LAPACK_H

#include <stddef.h>

/* QR factorisation of an m x n matrix, then Q's first k columns formed in
 * place. */
void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work,
             const int *lwork, int *info);
void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau,
             double *work, const int *lwork, int *info);

/* Cholesky factorisation of a symmetric positive definite n x n matrix,
 * in place (uplo "L": a = L L^T in the lower triangle). info > 0: not
 * positive definite. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);

/* Eigenvalues (ascending, into w) and, with jobz "V", eigenvectors (into
 * a's columns) of a symmetric n x n matrix. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info,
             size_t jobz_len, size_t uplo_len);

#endif
