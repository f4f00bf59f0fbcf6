/* The message table for enum tm_err. */
#include "tm_err.h"

static const char *const messages[TM_ERR__COUNT] = {
    [TM_OK] = "ok",
    [TM_ERR_NOMEM] = "out of memory",
    [TM_ERR_INVALID] = "invalid input",
    [TM_ERR_NOT_FOUND] = "not found",
    [TM_ERR_DENIED] = "access denied",
    [TM_ERR_IO] = "input/output error",
    [TM_ERR_STORE] = "store error",
    [TM_ERR_CRYPTO] = "cryptographic operation failed",
    [TM_ERR_UPSTREAM] = "Turso returned an error",
    [TM_ERR_NETWORK] = "Turso could not be reached",
    [TM_ERR_TIMEOUT] = "Turso did not answer in time",
    [TM_ERR_TOO_LARGE] = "too large",
    [TM_ERR_CANCELLED] = "cancelled",
    [TM_ERR_EXISTS] = "already exists",
    [TM_ERR_INTERNAL] = "internal error",
};

const char *tm_err_message(enum tm_err err)
{
    if ((int)err < 0 || err >= TM_ERR__COUNT || !messages[err])
        return "unknown error";
    return messages[err];
}
