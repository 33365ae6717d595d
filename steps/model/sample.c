/* sample.c - the next token from logits, HF generate()'s way (sample.h). */
#include "sample.h"

#include "errbuf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the PRNG ---- */

uint64_t sample_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sample_rng_seed(sample_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = sample_splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sample_rng_next(sample_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sample_rng_uniform(sample_rng *r) { return (double)(sample_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t sample_rng_below(sample_rng *r, uint64_t n) {
    /* Lemire (2019): the high word of x * n is uniform once the low words
     * that would over-represent some values are rejected. */
    unsigned __int128 m = (unsigned __int128)sample_rng_next(r) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = -n % n;
        while (low < threshold) {
            m = (unsigned __int128)sample_rng_next(r) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* ---- ordering tokens by score ---- */

/* a ranks before b: the larger score, then the smaller index, so that the
 * order (and with it every cut) is the same on every machine. */
static int ranks_before(const float *v, size_t a, size_t b) {
    return v[a] > v[b] || (v[a] == v[b] && a < b);
}

static void sift_down(const float *v, size_t *h, size_t i, size_t n) {
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        /* a heap whose root ranks last, so that the sorted array ranks first */
        if (c + 1 < n && ranks_before(v, h[c + 1], h[c]) == 0)
            c++;
        if (ranks_before(v, h[c], h[i]))
            return;
        size_t t = h[i];
        h[i] = h[c];
        h[c] = t;
        i = c;
    }
}

/* order[0..n) = the token indices, best first (heapsort: no allocation, no
 * recursion, O(n log n)). */
static void rank_tokens(const float *v, size_t n, size_t *order) {
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    if (n < 2)
        return;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, order, i, n);
    for (size_t end = n - 1; end > 0; end--) {
        size_t t = order[0];
        order[0] = order[end];
        order[end] = t;
        sift_down(v, order, 0, end);
    }
}

/* ---- the processors ---- */

void sample_repetition_penalty(float *logits, size_t n, const int32_t *history, size_t n_history,
                               float penalty) {
    if (penalty == 1.0f)
        return;
    /* HF gathers the scores of the history's ids, then scatters the
     * penalised values back: a repeated id is penalised once. Gather first
     * here too, then write, so that order and repeats do not matter. */
    for (size_t i = 0; i < n_history; i++) {
        int32_t id = history[i];
        if (id < 0 || (size_t)id >= n)
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = history[j] == id;
        if (seen)
            continue;
        float x = logits[id];
        logits[id] = x < 0 ? x * penalty : x / penalty;
    }
}

void sample_temperature(float *logits, size_t n, float temperature) {
    for (size_t i = 0; i < n; i++)
        logits[i] /= temperature;
}

void sample_top_k(float *logits, size_t n, size_t k, size_t min_keep, size_t *order) {
    if (k == 0 || n == 0)
        return;
    if (k < min_keep)
        k = min_keep;
    if (k >= n)
        return;
    rank_tokens(logits, n, order);
    float kth = logits[order[k - 1]];
    for (size_t i = 0; i < n; i++)
        if (logits[i] < kth)
            logits[i] = -INFINITY;
}

/* probs of the finite scores, in double: max-subtracted exponentials over
 * their sum. */
static double softmax_denominator(const float *logits, size_t n, double *max_out) {
    double max = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++)
        if (logits[i] > max)
            max = logits[i];
    if (max == -INFINITY) {
        *max_out = 0;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        sum += exp((double)logits[i] - max);
    *max_out = max;
    return sum;
}

void sample_top_p(float *logits, size_t n, float top_p, size_t min_keep, size_t *order) {
    if (top_p >= 1.0f || n == 0)
        return;
    double max, sum = softmax_denominator(logits, n, &max);
    if (sum == 0)
        return;
    rank_tokens(logits, n, order);
    double above = 0;
    for (size_t r = 0; r < n; r++) {
        size_t i = order[r];
        double p = exp((double)logits[i] - max) / sum;
        if (r >= min_keep && above >= top_p)
            logits[i] = -INFINITY;
        above += p;
    }
}

void sample_min_p(float *logits, size_t n, float min_p, size_t min_keep, size_t *order) {
    if (min_p <= 0.0f || n == 0)
        return;
    /* p_i < min_p * p_max  <=>  exp(x_i - max) < min_p: the sum cancels. */
    double max, sum = softmax_denominator(logits, n, &max);
    if (sum == 0)
        return;
    if (min_keep > 1)
        rank_tokens(logits, n, order);
    for (size_t r = 0; r < n; r++) {
        size_t i = min_keep > 1 ? order[r] : r;
        if (min_keep > 1 && r < min_keep)
            continue;
        if (exp((double)logits[i] - max) < (double)min_p)
            logits[i] = -INFINITY;
    }
}

void sample_softmax(const float *logits, float *probs, size_t n) {
    double max, sum = softmax_denominator(logits, n, &max);
    for (size_t i = 0; i < n; i++)
        probs[i] = sum == 0 ? 0.0f : (float)(exp((double)logits[i] - max) / sum);
}

size_t sample_argmax(const float *logits, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

/* ---- the sampler ---- */

struct sampler {
    sample_params p;
    size_t n;
    sample_rng rng;
    size_t *order;
};

sample_params sample_params_default(void) {
    return (sample_params){.temperature = 1.0f,
                           .top_k = 0,
                           .top_p = 1.0f,
                           .min_p = 0.0f,
                           .repetition_penalty = 1.0f,
                           .min_tokens_to_keep = 1,
                           .seed = 0};
}

int sampler_new(const sample_params *p, size_t n, sampler **out, char *err, size_t err_size) {
    *out = NULL;
    if (n == 0)
        return errbuf_set(err, err_size, -EINVAL, "sampling: the vocabulary is empty");
    if (isnan(p->temperature))
        return errbuf_set(err, err_size, -EINVAL, "sampling: temperature is not a number");
    if (!(p->top_p > 0.0f))
        return errbuf_set(err, err_size, -EINVAL,
                          "sampling: top_p must be > 0 (1 turns it off), not %g", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return errbuf_set(err, err_size, -EINVAL, "sampling: min_p must be in [0, 1], not %g",
                          (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f))
        return errbuf_set(err, err_size, -EINVAL,
                          "sampling: repetition_penalty must be > 0 (1 turns it off), not %g",
                          (double)p->repetition_penalty);
    sampler *s = calloc(1, sizeof(*s));
    if (!s || !(s->order = malloc(n * sizeof(*s->order)))) {
        free(s);
        return errbuf_set(err, err_size, -ENOMEM, "sampling: out of memory for %zu tokens", n);
    }
    s->p = *p;
    if (s->p.min_tokens_to_keep == 0)
        s->p.min_tokens_to_keep = 1;
    s->n = n;
    sample_rng_seed(&s->rng, p->seed);
    *out = s;
    return 0;
}

void sampler_free(sampler *s) {
    if (!s)
        return;
    free(s->order);
    free(s);
}

sample_rng *sampler_rng(sampler *s) { return &s->rng; }

int32_t sampler_next(sampler *s, float *logits, const int32_t *history, size_t n_history) {
    const sample_params *p = &s->p;
    size_t n = s->n, keep = p->min_tokens_to_keep;
    sample_repetition_penalty(logits, n, history, n_history, p->repetition_penalty);
    if (p->temperature <= 0.0f)
        return (int32_t)sample_argmax(logits, n);
    if (p->temperature != 1.0f)
        sample_temperature(logits, n, p->temperature);
    sample_top_k(logits, n, p->top_k, keep, s->order);
    sample_top_p(logits, n, p->top_p, keep, s->order);
    sample_min_p(logits, n, p->min_p, keep, s->order);
    double max, sum = softmax_denominator(logits, n, &max);
    if (!(sum > 0) || !isfinite(sum))
        return (int32_t)sample_argmax(logits, n);
    double target = sample_rng_uniform(&s->rng) * sum, cum = 0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (logits[i] == -INFINITY)
            continue;
        cum += exp((double)logits[i] - max);
        last = i;
        if (cum > target)
            return (int32_t)i;
    }
    return (int32_t)last; /* rounding left u * sum at the very top */
}

/* ---- stop strings ---- */

struct stop_matcher {
    char **stops;
    size_t *lens;
    size_t n, longest;
    char *buf; /* the held bytes, then (during a feed) the new ones */
    size_t len, cap;
    size_t released; /* buf[0..released) was handed out by the last call */
    int stopped;
};

int stop_matcher_new(const char *const *stops, size_t n, stop_matcher **out, char *err,
                     size_t err_size) {
    stop_matcher *m = calloc(1, sizeof(*m));
    if (!m ||
        (n && (!(m->stops = calloc(n, sizeof(char *))) || !(m->lens = calloc(n, sizeof(size_t))))))
        goto oom;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(stops[i]);
        if (len == 0)
            continue;
        if (!(m->stops[m->n] = malloc(len + 1)))
            goto oom;
        memcpy(m->stops[m->n], stops[i], len + 1);
        m->lens[m->n++] = len;
        if (len > m->longest)
            m->longest = len;
    }
    *out = m;
    return 0;
oom:
    stop_matcher_free(m);
    *out = NULL;
    return errbuf_set(err, err_size, -ENOMEM, "stop strings: out of memory");
}

void stop_matcher_free(stop_matcher *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->stops[i]);
    free(m->stops);
    free(m->lens);
    free(m->buf);
    free(m);
}

/* Bytes at the end of s[0..len) that begin a UTF-8 character not yet
 * complete (0 when the text ends on a character boundary). */
static size_t utf8_incomplete_tail(const char *s, size_t len) {
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = (unsigned char)s[len - back];
        if ((c & 0xc0) == 0x80)
            continue; /* a continuation byte: look further back */
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

static void drop_released(stop_matcher *m) {
    if (m->released == 0)
        return;
    memmove(m->buf, m->buf + m->released, m->len - m->released);
    m->len -= m->released;
    m->released = 0;
}

int stop_matcher_feed(stop_matcher *m, const char *text, size_t len, const char **out,
                      size_t *out_len) {
    *out = m->buf ? m->buf : "";
    *out_len = 0;
    if (m->stopped)
        return 1;
    drop_released(m);
    if (m->len + len + 1 > m->cap) {
        size_t cap = (m->len + len + 1) * 2;
        char *b = realloc(m->buf, cap);
        if (!b)
            return -ENOMEM;
        m->buf = b;
        m->cap = cap;
    }
    if (len)
        memcpy(m->buf + m->len, text, len);
    m->len += len;
    *out = m->buf;
    /* A stop string anywhere in held + new: the earliest start wins. Held
     * bytes are fewer than the longest stop string, so each search is
     * short. */
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < m->n; i++) {
        size_t l = m->lens[i];
        for (size_t at = 0; at + l <= m->len && at < first; at++)
            if (memcmp(m->buf + at, m->stops[i], l) == 0) {
                first = at;
                break;
            }
    }
    if (first != SIZE_MAX) {
        m->stopped = 1;
        m->released = first;
        *out_len = first;
        m->len = first;
        return 1;
    }
    /* Hold back the longest tail that a stop string begins with. */
    size_t hold = 0;
    for (size_t i = 0; i < m->n; i++)
        for (size_t l = m->lens[i] - 1 < m->len ? m->lens[i] - 1 : m->len; l > hold; l--)
            if (memcmp(m->buf + m->len - l, m->stops[i], l) == 0) {
                hold = l;
                break;
            }
    size_t partial = utf8_incomplete_tail(m->buf, m->len);
    if (partial > hold)
        hold = partial;
    m->released = m->len - hold;
    *out_len = m->released;
    return 0;
}

void stop_matcher_flush(stop_matcher *m, const char **out, size_t *out_len) {
    if (m->stopped || !m->buf) {
        *out = m->buf ? m->buf : "";
        *out_len = 0;
        return;
    }
    drop_released(m);
    *out = m->buf;
    *out_len = m->len;
    m->released = m->len;
}

size_t stop_matcher_held(const stop_matcher *m) { return m->len - m->released; }
