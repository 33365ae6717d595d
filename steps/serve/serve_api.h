/* serve_api.h - the JSON of OpenAI's API as sluice-serve reads and writes
 * it: a /v1/chat/completions, /v1/completions or /rag body parsed (libbson) and
 * checked into a request, the chat messages rendered into a prompt, and
 * the answers, stream chunks and error objects written out. Pure
 * functions: nothing here touches the network or the model (the fuzz
 * target runs them on arbitrary bytes). */
#ifndef SLUICE_SERVE_API_H
#define SLUICE_SERVE_API_H

#include <stddef.h>
#include <stdint.h>

#define API_MAX_STOPS 4 /* OpenAI's limit on "stop" */

#define API_RAG_MAX_K 20 /* chunks a /rag request may ask for */

/* API_RAG: POST /rag, a query answered from the chunks retrieved for it
 * (serve_retrieval.h builds its prompt). */
typedef enum api_kind { API_CHAT, API_COMPLETION, API_RAG } api_kind;

/* A generation request. Strings are the request's own (api_request_free). */
typedef struct api_request {
    api_kind kind;
    char *model;           /* as the client named it; NULL when absent */
    char *prompt;          /* chat: the messages rendered (api_render_chat); rag: NULL */
    char *query;           /* rag: the query */
    long k;                /* rag: the chunks to retrieve, 1 to API_RAG_MAX_K (3) */
    char *filter_author;   /* rag: only chunks of this author ("filter": {"author"}); or NULL */
    char *filter_category; /* rag: only chunks of this category (articles, posts, ...); or NULL */
    long max_tokens;       /* -1: up to the context */
    double temperature;    /* OpenAI's default 1 */
    double top_p;          /* 1 */
    int has_seed;
    uint64_t seed;
    char *stops[API_MAX_STOPS];
    size_t n_stops;
    int stream;
    int include_usage; /* stream_options.include_usage */
} api_request;

/* Parses body[0..len) as a request of kind: -EINVAL with a message naming
 * the field (malformed JSON, a missing or mistyped field, a value out of
 * OpenAI's range), -ENOMEM. *param (static, may be NULL) names the field
 * for the error object. On failure r holds nothing to free. */
int api_parse(api_kind kind, const char *body, size_t len, api_request *r, const char **param,
              char *err, size_t err_size);
void api_request_free(api_request *r);

/* A parser's refusal of field p: *param = p, the message into err, rc =
 * -EINVAL, then to the function's fail: label (param, err, err_size and rc
 * in scope). */
#define API_FAIL(p, ...)                                                                           \
    do {                                                                                           \
        *param = p;                                                                                \
        snprintf(err, err_size, __VA_ARGS__);                                                      \
        rc = -EINVAL;                                                                              \
        goto fail;                                                                                 \
    } while (0)

/* The prompt for chat messages: the Alpaca template the train step's sft
 * method trains with (train_alpaca_prompt), each earlier user turn with
 * its assistant answer, then the last user message with an empty answer;
 * system messages go before the first instruction. NULL when out of
 * memory. roles and contents are n strings each. */
char *api_render_chat(const char *const *roles, const char *const *contents, size_t n);

/* A growable string: the JSON being written. */
typedef struct api_buf {
    char *p;
    size_t len, cap;
    int failed; /* an allocation failed: p is not the whole text */
} api_buf;
void api_buf_add(api_buf *b, const char *s, size_t n);
void api_buf_printf(api_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* s[0..n) as a JSON string, quotes included; invalid UTF-8 becomes U+FFFD. */
void api_buf_json(api_buf *b, const char *s, size_t n);
void api_buf_free(api_buf *b);

/* An OpenAI error object: {"error": {"message", "type", "param", "code"}}. */
void api_error(api_buf *b, const char *message, const char *type, const char *param,
               const char *code);

/* What a finished generation says. */
typedef struct api_result {
    const char *text; /* the whole text (a stream's chunks are its pieces) */
    size_t text_len;
    const char *finish_reason; /* "stop", "length" */
    long prompt_tokens, completion_tokens;
} api_result;

/* "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}. */
void api_usage(api_buf *b, const api_result *r);
/* The whole answer of kind (a chat.completion or text_completion). */
void api_answer(api_buf *b, api_kind kind, const char *id, long created, const char *model,
                const api_result *res);
/* One server-sent event of a stream: "data: {chunk}\n\n". The first chat
 * chunk carries the role (role set), a text piece its content, the last
 * its finish_reason (finish set, piece empty); a usage chunk has no
 * choices (usage set). */
void api_chunk(api_buf *b, api_kind kind, const char *id, long created, const char *model, int role,
               const char *piece, size_t piece_len, const char *finish, const api_result *usage);

#endif
