/*
 * One error enum for the whole server. Lower layers return these codes;
 * the layer that handles an error logs it once and turns it into a reply.
 * tm_err_message() gives a short, secret-free text for each code.
 */
#ifndef TM_ERR_H
#define TM_ERR_H

enum tm_err {
    TM_OK = 0,
    TM_ERR_NOMEM,     /* an allocation failed */
    TM_ERR_INVALID,   /* the caller's input is malformed or out of range */
    TM_ERR_NOT_FOUND, /* no such user, record, session or object */
    TM_ERR_DENIED,    /* a token or key does not open the record, or it was tampered with */
    TM_ERR_IO,        /* a file or socket operation failed */
    TM_ERR_STORE,     /* the embedded store failed (SQLite) */
    TM_ERR_CRYPTO,    /* libsodium refused an operation */
    TM_ERR_UPSTREAM,  /* Turso answered with an error */
    TM_ERR_NETWORK,   /* Turso could not be reached */
    TM_ERR_TIMEOUT,   /* Turso did not answer in time */
    TM_ERR_TOO_LARGE, /* a body or result exceeded its cap */
    TM_ERR_CANCELLED, /* the call was cancelled or the server is stopping */
    TM_ERR_EXISTS,    /* the object already exists */
    TM_ERR_INTERNAL,  /* a broken invariant inside the server */
    TM_ERR__COUNT
};

/* A static, secret-free description of `err`; never NULL. */
const char *tm_err_message(enum tm_err err);

#endif
