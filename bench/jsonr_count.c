/*
 * jsonr_count: what reading a JSON text costs, json_loadb next to
 * jsonr_loadb, counted in instructions (wall-clock time on a shared machine
 * says little). Each reader runs in its own function, for callgrind to count
 * alone:
 *
 *   cc -O2 -Iinclude -o bench/build/jsonr_count bench/jsonr_count.c build/libtmcore.a \
 *       -ljansson -lsodium -lm
 *   valgrind --tool=callgrind --toggle-collect=read_jsonr bench/build/jsonr_count point jsonr
 *
 * Texts: `point` (a tools/call of turso_query, read 100 times), `list` (a
 * tools/list, 100 times), `hrana` (a ~1 MB Hrana execute answer, once; the
 * two readers' values are compared). Readers: `jansson`, `jsonr`; the
 * function to count is read_jansson or read_jsonr.
 */
#include "jsonr.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char point[] =
    "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"turso_query\","
    "\"arguments\":{\"sql\":\"SELECT id, name, qty, price, note FROM items WHERE id = "
    "?\",\"args\":[1234]}}}";
static const char list[] = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{}}";

__attribute__((noinline)) json_t *read_jansson(const char *s, size_t len, size_t flags)
{
    json_error_t error;
    return json_loadb(s, len, flags, &error);
}

__attribute__((noinline)) json_t *read_jsonr(const char *s, size_t len, size_t flags)
{
    json_error_t error;
    return jsonr_loadb(s, len, flags, &error);
}

/* A Hrana answer of about 1 MB: rows of integers, reals, texts (some with escapes and UTF-8),
 * nulls. */
static char *hrana_answer(size_t *len)
{
    size_t cap = 1200000, o = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    o += (size_t)snprintf(
        s + o, cap - o, "%s",
        "{\"baton\":null,\"base_url\":null,\"results\":[{\"type\":\"ok\",\"response\":{\"type\":"
        "\"execute\",\"result\":{\"cols\":[{\"name\":\"id\",\"decltype\":\"INTEGER\"},{\"name\":"
        "\"name\",\"decltype\":\"TEXT\"},{\"name\":\"qty\",\"decltype\":\"INTEGER\"},{\"name\":"
        "\"price\",\"decltype\":\"REAL\"},{\"name\":\"note\",\"decltype\":\"TEXT\"}],\"rows\":[");
    for (int r = 0; o < 1000000; r++) {
        const char *note =
            r % 3 == 0   ? "{\"type\":\"null\"}"
            : r % 3 == 1 ? "{\"type\":\"text\",\"value\":\"a note with \\\"quotes\\\" and "
                           "caf\xc3\xa9 \xe2\x82\xac in it, then some more plain text\"}"
                         : "{\"type\":\"text\",\"value\":\"plain note text for the row, nothing "
                           "special about it at all\"}";
        o += (size_t)snprintf(s + o, cap - o,
                              "%s[{\"type\":\"integer\",\"value\":\"%d\"},{\"type\":\"text\","
                              "\"value\":\"item %d name\"},{\"type\":\"integer\",\"value\":\"%d\"},"
                              "{\"type\":\"float\",\"value\":%d.%02d},%s]",
                              r ? "," : "", r + 1, r + 1, (r * 7) % 1000, r % 500, r % 100, note);
    }
    o += (size_t)snprintf(s + o, cap - o, "%s",
                          "],\"affected_row_count\":0,\"last_insert_rowid\":null,"
                          "\"replication_index\":\"42\"}}},{\"type\":\"ok\",\"response\":{"
                          "\"type\":\"close\"}}]}");
    *len = o;
    return s;
}

int main(int argc, char **argv)
{
    const char *text_name = argc > 1 ? argv[1] : "point";
    bool is_jsonr = argc > 2 && strcmp(argv[2], "jsonr") == 0;
    const char *text = point;
    size_t len = sizeof(point) - 1, flags = JSON_REJECT_DUPLICATES;
    int times = 100;
    char *answer = NULL;
    if (strcmp(text_name, "list") == 0) {
        text = list;
        len = sizeof(list) - 1;
    } else if (strcmp(text_name, "hrana") == 0) {
        text = answer = hrana_answer(&len);
        flags = JSON_ALLOW_NUL;
        times = 1;
    } else if (strcmp(text_name, "point") != 0) {
        fprintf(stderr, "usage: jsonr_count point|list|hrana jansson|jsonr\n");
        return 2;
    }
    if (!text)
        return 1;
    for (int i = 0; i < times; i++) {
        json_t *v = is_jsonr ? read_jsonr(text, len, flags) : read_jansson(text, len, flags);
        if (!v) {
            fprintf(stderr, "jsonr_count: the text was refused\n");
            return 1;
        }
        if (i == 0) {
            json_t *other =
                is_jsonr ? read_jansson(text, len, flags) : read_jsonr(text, len, flags);
            if (!json_equal(v, other)) {
                fprintf(stderr, "jsonr_count: the readers disagree\n");
                return 1;
            }
            json_decref(other);
        }
        json_decref(v);
    }
    printf("%s, %zu bytes, read %d times by %s\n", text_name, len, times,
           is_jsonr ? "jsonr_loadb" : "json_loadb");
    free(answer);
    return 0;
}
