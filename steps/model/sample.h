/* sample.h - choosing the next token from a logits vector, as Hugging Face
 * transformers' generate() does, and holding back streamed text that may be
 * the start of a stop string.
 *
 * The processors run in the order generate() builds them
 * (GenerationMixin._get_logits_processor, then its warpers):
 *
 *   1. repetition penalty  (RepetitionPenaltyLogitsProcessor)
 *   2. temperature         (TemperatureLogitsWarper)
 *   3. top-k               (TopKLogitsWarper)
 *   4. top-p               (TopPLogitsWarper)
 *   5. min-p               (MinPLogitsWarper)
 *
 * then softmax and one draw. Greedy decoding (temperature <= 0, llama.cpp's
 * convention for "do_sample=False") applies only the repetition penalty and
 * takes the first index of the largest score, as torch.argmax does. A removed
 * token's score becomes -INFINITY, HF's filter_value. Each warper keeps at
 * least min_tokens_to_keep tokens (HF's default 1).
 *
 * The draw is ours, not torch.multinomial's: u uniform in [0, 1) from the
 * sampler's PRNG, then the first token, in vocabulary order, whose
 * cumulative probability exceeds u * total. The same seed, logits and
 * history give the same tokens on every machine.
 *
 * The PRNG is xoshiro256** (Blackman and Vigna, 2018) seeded by four draws
 * of splitmix64 from the 64-bit seed, the seeding its authors recommend. The
 * train step's data order uses it too. */
#ifndef SLUICE_SAMPLE_H
#define SLUICE_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

/* ---- the PRNG ---- */

typedef struct sample_rng {
    uint64_t s[4];
} sample_rng;

/* One step of splitmix64 (Steele, Lea and Flood 2014) on *state. */
uint64_t sample_splitmix64(uint64_t *state);
void sample_rng_seed(sample_rng *r, uint64_t seed);
uint64_t sample_rng_next(sample_rng *r);
/* Uniform in [0, 1): the top 53 bits of a draw. */
double sample_rng_uniform(sample_rng *r);
/* Uniform in [0, n) without bias (Lemire's multiply-and-reject); n > 0. */
uint64_t sample_rng_below(sample_rng *r, uint64_t n);

/* ---- the processors, in place on logits[0..n) ---- */

/* HF's repetition penalty: each distinct token of history[0..n_history)
 * (the prompt and what was generated so far), once, has its score divided
 * by penalty when positive and multiplied by it when not. Ids outside
 * [0, n) are ignored. penalty 1 changes nothing. */
void sample_repetition_penalty(float *logits, size_t n, const int32_t *history, size_t n_history,
                               float penalty);
/* Divides every score by temperature (> 0). */
void sample_temperature(float *logits, size_t n, float temperature);
/* Keeps the scores >= the k-th largest (ties kept, as HF's
 * `scores < topk(scores, k)[-1]`); k is raised to min_keep and capped at n.
 * k 0 changes nothing. order is scratch space for n indices. */
void sample_top_k(float *logits, size_t n, size_t k, size_t min_keep, size_t *order);
/* Nucleus: keeps the smallest set of most probable tokens whose probability
 * reaches top_p, i.e. a token is removed when the probability of the tokens
 * ranked above it is already >= top_p (HF removes where the ascending
 * cumulative sum is <= 1 - top_p); at least min_keep stay. top_p >= 1
 * changes nothing. order is scratch space for n indices. */
void sample_top_p(float *logits, size_t n, float top_p, size_t min_keep, size_t *order);
/* Removes the tokens whose probability is below min_p times the largest
 * probability; at least min_keep (the most probable) stay. min_p <= 0
 * changes nothing. order is scratch space for n indices. */
void sample_min_p(float *logits, size_t n, float min_p, size_t min_keep, size_t *order);
/* softmax(logits) into probs (either may be the other); -INFINITY gives 0. */
void sample_softmax(const float *logits, float *probs, size_t n);
/* The first index of the largest score. */
size_t sample_argmax(const float *logits, size_t n);

/* ---- a sampler: the parameters, the PRNG and scratch space ---- */

typedef struct sample_params {
    float temperature;         /* <= 0: greedy; 1: unchanged */
    size_t top_k;              /* 0: off */
    float top_p;               /* >= 1: off */
    float min_p;               /* <= 0: off */
    float repetition_penalty;  /* 1: off */
    size_t min_tokens_to_keep; /* 0 is taken as 1 */
    uint64_t seed;
} sample_params;

/* HF's defaults without sampling restrictions: temperature 1, top_k 0,
 * top_p 1, min_p 0, penalty 1, keep 1, seed 0. */
sample_params sample_params_default(void);

typedef struct sampler sampler;

/* A sampler for vocabularies of n tokens; *out is the caller's, freed with
 * sampler_free. -EINVAL for a negative or NaN parameter, naming it. */
int sampler_new(const sample_params *p, size_t n, sampler **out, char *err, size_t err_size);
void sampler_free(sampler *s);
/* The next token for logits[0..n) (overwritten with the processed scores,
 * -INFINITY where removed) after history[0..n_history). */
int32_t sampler_next(sampler *s, float *logits, const int32_t *history, size_t n_history);
/* The PRNG's state, to save and restore a generation mid-way. */
sample_rng *sampler_rng(sampler *s);

/* ---- stop strings over a stream of text ---- */

/* Generated text arrives in pieces (a token's bytes). The matcher keeps back
 * what might still become a stop string, and an incomplete UTF-8 character
 * at the end, so that a streaming reader never sees part of a stop string
 * or half a character. The stop string itself and anything after it are
 * never released (as OpenAI's API and llama.cpp's server do; HF's
 * StopStringCriteria only stops and leaves it in the text). */
typedef struct stop_matcher stop_matcher;

/* stops[0..n) are copied; empty strings are ignored. */
int stop_matcher_new(const char *const *stops, size_t n, stop_matcher **out, char *err,
                     size_t err_size);
void stop_matcher_free(stop_matcher *m);
/* Appends text[0..len). *out (borrowed until the next call) and *out_len
 * are the bytes now safe to show. Returns 1 when a stop string was
 * completed (the text up to its start is released, the rest dropped; later
 * calls release nothing), 0 otherwise, -ENOMEM. */
int stop_matcher_feed(stop_matcher *m, const char *text, size_t len, const char **out,
                      size_t *out_len);
/* At the end of a generation that hit no stop string: the bytes still held
 * back (borrowed until the next call). */
void stop_matcher_flush(stop_matcher *m, const char **out, size_t *out_len);
/* Bytes held back now. */
size_t stop_matcher_held(const stop_matcher *m);

#endif
