/* error.h - one name for every error code sluice passes around.
 *
 * Functions return 0 or a negative code, and the codes of the four domains
 * that meet in sluice lie in ranges apart, so that a code alone says what
 * it is and sluice_strerror() names any of them:
 *
 *   0                   success
 *   -1 .. -2999         a negated errno (-ENOENT). libuv's UV_E* codes of
 *                       the same names are these values on POSIX systems.
 *   -3000 .. -4095      libuv's own codes: UV_EAI_* (name resolution),
 *                       UV_EOF, UV_ECHARSET, UV_EFTYPE, ...
 *   -20001 .. -20999    the plugin SDK's SL_E* codes (<sluice/plugin.h>,
 *                       SL_ERANGE_BEGIN .. SL_ERANGE_END)
 *   -30799 .. -30780    LMDB's MDB_* codes (MDB_KEYEXIST .. MDB_LAST_ERRCODE)
 *
 * A part that knows more about a code in its own context says so first
 * (meta_strerror() for the metadata file, sl_status_message() for what a
 * step returned) and leaves the rest to this. */
#ifndef SLUICE_LIB_ERROR_H
#define SLUICE_LIB_ERROR_H

/* The message for code: static text, never NULL, safe from any thread
 * (errno's text is the C library's). A code in none of the ranges above,
 * or a positive one, is "unknown error code". */
const char *sluice_strerror(int code);

#endif
