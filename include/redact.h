/*
 * Making text that came from outside safe to show: secrets masked, control
 * bytes and invalid UTF-8 replaced.
 */
#ifndef TM_REDACT_H
#define TM_REDACT_H

/*
 * Makes a message safe to show, in place: `secret` (if not NULL or empty)
 * and anything shaped like a JWT or a Bearer credential become ***, control
 * bytes become spaces and invalid UTF-8 becomes '?'. Accepts NULL.
 */
void redact_message(char *message, const char *secret);

#endif
