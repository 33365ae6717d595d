/* model_eval.c - the evaluate step's model mode (model_eval.h). */
#include "model_eval.h"

#include <sluice/artifacts.h>
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "examples.h"
#include "model_folder.h"
#include "text.h"

static const char *const metric_names[EVAL_N_METRICS] = {"perplexity", "rouge_l", "bleu",
                                                         "exact_match", "length"};

typedef struct eval_settings {
    int want[EVAL_N_METRICS];
    size_t max_examples; /* 0: all */
    size_t max_new_tokens;
    const char *split; /* "test", or "train" to see what the model learnt */
    sample_params sampling;
} eval_settings;

static int read_settings(sl_ctx *ctx, eval_settings *s) {
    memset(s, 0, sizeof(*s));
    size_t nm = sl_param_list_len(ctx, "metrics");
    for (size_t i = 0; i < nm; i++) {
        const char *m = sl_param_list_item(ctx, "metrics", i);
        size_t j = 0;
        while (j < EVAL_N_METRICS && strcmp(m, metric_names[j]) != 0)
            j++;
        if (j == EVAL_N_METRICS)
            return sl_fail(ctx,
                           "metrics: '%s' is not a model metric (perplexity, rouge_l, bleu, "
                           "exact_match, length)",
                           m);
        s->want[j] = 1;
    }
    for (size_t j = 0; nm == 0 && j < EVAL_N_METRICS; j++)
        s->want[j] = 1;
    int64_t max_examples = sl_param_int(ctx, "max_examples"),
            max_new = sl_param_int(ctx, "max_new_tokens"), threads = sl_param_int(ctx, "threads");
    double temperature = sl_param_f64(ctx, "temperature");
    if (max_examples < 0)
        return sl_fail(ctx, "max_examples is %lld: give 0 (all) or more", (long long)max_examples);
    if (max_new < 1 || max_new > 1 << 20)
        return sl_fail(ctx, "max_new_tokens is %lld: give 1 to 1048576", (long long)max_new);
    if (threads < 1 || threads > 256)
        return sl_fail(ctx, "threads is %lld: give 1 to 256", (long long)threads);
    if (!(temperature >= 0 && temperature <= 100))
        return sl_fail(ctx, "temperature is %g: give 0 (greedy) to 100", temperature);
    s->split = sl_param_str(ctx, "split");
    if (!s->split || (strcmp(s->split, "test") != 0 && strcmp(s->split, "train") != 0))
        return sl_fail(ctx, "split is '%s': use test or train", s->split ? s->split : "");
    s->max_examples = (size_t)max_examples;
    s->max_new_tokens = (size_t)max_new;
    s->sampling = sample_params_default();
    s->sampling.temperature = (float)temperature;
    s->sampling.seed = (uint64_t)sl_param_int(ctx, "seed");
    openblas_set_num_threads((int)threads);
    return SL_OK;
}

/* Perplexity: each example in the SFT template (train_examples_build: the
 * prompt, the answer and EOS, the loss mask on the answer and EOS), one
 * forward each, the negative log-probabilities of the masked tokens
 * summed. */
static int score_perplexity(sl_ctx *ctx, model_folder *f, const dataset *d, eval_example *ex,
                            size_t *truncated) {
    char err[1024];
    train_tokenizer tk;
    if (model_folder_train_tokenizer(f, &tk, err, sizeof(err)) != 0)
        return sl_fail(ctx, "model: %s", err);
    const model_config *c = model_get_config(f->m);
    train_format fmt = {(size_t)c->context, 0, TRAIN_TRUNCATE, 1};
    train_examples *te = NULL;
    if (train_examples_build(d, &tk, &fmt, &te, err, sizeof(err)) != 0)
        return sl_fail(ctx, "input 'dataset': %s", err);
    *truncated = te->truncated;
    int32_t *targets = malloc((size_t)c->context * sizeof(int32_t));
    int rc = targets ? SL_OK : sl_fail(ctx, "out of memory");
    for (size_t k = 0; rc == SL_OK && k < te->n; k++) {
        const train_seq *q = &te->seq[k];
        for (size_t i = 0; i < q->len; i++)
            targets[i] = i + 1 < q->len && q->mask[i + 1] ? q->ids[i + 1] : -1;
        float loss;
        if (model_forward(f->m, q->ids, targets, NULL, 1, (int)q->len, &loss, err, sizeof(err)) !=
            0) {
            rc = sl_fail(ctx, "model: %s", err);
            break;
        }
        const float *lp = model_logprobs(f->m);
        eval_example *e = &ex[te->source[k]];
        for (size_t i = 0; i < q->len; i++)
            if (targets[i] >= 0) {
                e->nll -= (double)lp[i];
                e->nll_tokens++;
            }
        e->scored = e->nll_tokens > 0;
        /* a cut sequence fills the context exactly and its EOS is gone */
        e->truncated = q->len == (size_t)c->context && q->ids[q->len - 1] != tk.eos_id;
        if (sl_cancelled(ctx))
            rc = SL_ECANCELLED;
    }
    free(targets);
    train_examples_free(te);
    return rc;
}

/* The answer to one instruction, and its scores against the reference. */
static int generate_one(sl_ctx *ctx, model_folder *f, const eval_settings *s, eval_example *e,
                        textscore_bleu *corpus) {
    char err[1024];
    model_generation g;
    if (model_folder_generate(f, e->instruction, 1, s->max_new_tokens, &s->sampling, NULL, NULL, &g,
                              err, sizeof(err)) != 0)
        return sl_fail(ctx, "model: example %zu: %s", e->index + 1, err);
    /* the bytes may end inside a character (the last token's): the report
     * holds valid UTF-8, as a Hugging Face decode would give */
    size_t len;
    int rc = text_utf8_dup(g.text ? g.text : "", g.len, &e->answer, &len);
    free(g.text);
    if (rc != 0)
        return sl_fail(ctx, "out of memory");
    e->answer_tokens = g.new_tokens;
    e->eos = g.eos;
    textscore_bleu one = {0};
    if (textscore_rouge_l(e->answer, e->reference, &e->rouge) != 0 ||
        textscore_bleu_add(&one, e->answer, e->reference) != 0 ||
        textscore_bleu_add(corpus, e->answer, e->reference) != 0)
        return sl_fail(ctx, "out of memory");
    e->bleu = textscore_bleu_score(&one, 1);
    e->exact_match = textscore_exact_match(e->answer, e->reference);
    e->answer_words = textscore_words(e->answer);
    e->reference_words = textscore_words(e->reference);
    return SL_OK;
}

void eval_example_write(const eval_example *e, const int *want, bson_t *line) {
    BSON_APPEND_INT64(line, "index", (int64_t)e->index);
    BSON_APPEND_UTF8(line, "instruction", e->instruction);
    BSON_APPEND_UTF8(line, "reference", e->reference);
    if (e->answer) {
        BSON_APPEND_UTF8(line, "answer", e->answer);
        BSON_APPEND_INT64(line, "answer_tokens", (int64_t)e->answer_tokens);
        BSON_APPEND_BOOL(line, "eos", e->eos);
    }
    if (want[EVAL_PERPLEXITY] && e->scored) {
        BSON_APPEND_DOUBLE(line, "nll", e->nll);
        BSON_APPEND_INT64(line, "tokens", (int64_t)e->nll_tokens);
        BSON_APPEND_DOUBLE(line, "perplexity", exp(e->nll / (double)e->nll_tokens));
        BSON_APPEND_BOOL(line, "truncated", e->truncated);
    }
    if (!e->answer)
        return;
    if (want[EVAL_ROUGE_L]) {
        BSON_APPEND_DOUBLE(line, "rouge_l", e->rouge.f1);
        BSON_APPEND_DOUBLE(line, "rouge_l_precision", e->rouge.precision);
        BSON_APPEND_DOUBLE(line, "rouge_l_recall", e->rouge.recall);
    }
    if (want[EVAL_BLEU])
        BSON_APPEND_DOUBLE(line, "bleu", e->bleu);
    if (want[EVAL_EXACT_MATCH])
        BSON_APPEND_BOOL(line, "exact_match", e->exact_match);
    if (want[EVAL_LENGTH]) {
        BSON_APPEND_INT64(line, "answer_words", (int64_t)e->answer_words);
        BSON_APPEND_INT64(line, "reference_words", (int64_t)e->reference_words);
    }
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The mean and median (the mean of the middle two for an even count) of
 * the field at offset in each example. */
static int words_stats(const eval_example *ex, size_t n, size_t offset, double *mean,
                       double *median) {
    size_t *v = malloc(n * sizeof(*v));
    if (!v)
        return -ENOMEM;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(&v[i], (const char *)&ex[i] + offset, sizeof(size_t));
        sum += (double)v[i];
    }
    qsort(v, n, sizeof(*v), cmp_size);
    *mean = sum / (double)n;
    *median = n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2;
    free(v);
    return 0;
}

static void figure(sl_ctx *ctx, bson_t *figures, const char *key, double v) {
    BSON_APPEND_DOUBLE(figures, key, v);
    sl_metric(ctx, key, v, -1);
}

/* The aggregates of the n examples. */
static int aggregate(sl_ctx *ctx, const eval_settings *s, const eval_example *ex, size_t n,
                     const textscore_bleu *corpus, size_t truncated, bson_t *figures) {
    BSON_APPEND_UTF8(figures, "split", s->split);
    BSON_APPEND_INT64(figures, "examples", (int64_t)n);
    sl_metric(ctx, "examples", (double)n, -1);
    if (s->want[EVAL_PERPLEXITY]) {
        double nll = 0;
        size_t tokens = 0, scored = 0;
        for (size_t i = 0; i < n; i++) {
            nll += ex[i].nll;
            tokens += ex[i].nll_tokens;
            scored += ex[i].scored;
        }
        if (tokens == 0)
            return sl_fail(ctx, "perplexity: no example has an answer token within the "
                                "model's context");
        figure(ctx, figures, "perplexity", exp(nll / (double)tokens));
        figure(ctx, figures, "loss", nll / (double)tokens);
        figure(ctx, figures, "perplexity_tokens", (double)tokens);
        BSON_APPEND_INT64(figures, "perplexity_examples", (int64_t)scored);
        BSON_APPEND_INT64(figures, "perplexity_truncated", (int64_t)truncated);
        sl_log(ctx, SL_LOG_INFO, "perplexity = %.4f over %zu answer tokens of %zu examples",
               exp(nll / (double)tokens), tokens, scored);
        if (truncated || scored < n)
            sl_log(ctx, SL_LOG_WARN,
                   "perplexity: %zu examples cut to the model's context, %zu left out (no "
                   "answer token within it)",
                   truncated, n - scored);
    }
    int generated = s->want[EVAL_ROUGE_L] || s->want[EVAL_BLEU] || s->want[EVAL_EXACT_MATCH] ||
                    s->want[EVAL_LENGTH];
    if (!generated)
        return SL_OK;
    double rouge = 0, exact = 0, tokens = 0, eos = 0;
    for (size_t i = 0; i < n; i++) {
        rouge += ex[i].rouge.f1;
        exact += ex[i].exact_match;
        tokens += (double)ex[i].answer_tokens;
        eos += ex[i].eos;
    }
    if (s->want[EVAL_ROUGE_L])
        figure(ctx, figures, "rouge_l", rouge / (double)n);
    if (s->want[EVAL_BLEU])
        figure(ctx, figures, "bleu", textscore_bleu_score(corpus, 0));
    if (s->want[EVAL_EXACT_MATCH])
        figure(ctx, figures, "exact_match", exact / (double)n);
    if (s->want[EVAL_LENGTH]) {
        double am, amed, rm, rmed;
        if (words_stats(ex, n, offsetof(eval_example, answer_words), &am, &amed) != 0 ||
            words_stats(ex, n, offsetof(eval_example, reference_words), &rm, &rmed) != 0)
            return sl_fail(ctx, "out of memory");
        figure(ctx, figures, "answer_words_mean", am);
        figure(ctx, figures, "answer_words_median", amed);
        figure(ctx, figures, "reference_words_mean", rm);
        figure(ctx, figures, "reference_words_median", rmed);
        figure(ctx, figures, "length_ratio", rm > 0 ? am / rm : 0);
        figure(ctx, figures, "answer_tokens_mean", tokens / (double)n);
        figure(ctx, figures, "eos_rate", eos / (double)n);
    }
    sl_log(ctx, SL_LOG_INFO, "generated %zu answers: rouge_l %.4f, bleu %.2f, exact_match %.4f", n,
           rouge / (double)n, textscore_bleu_score(corpus, 0), exact / (double)n);
    return SL_OK;
}

static int write_report(sl_ctx *ctx, const eval_settings *s, const eval_example *ex, size_t n) {
    char err[1024];
    sl_records_writer *w = NULL;
    if (sl_records_create(sl_output_path(ctx, "report"), &w, err, sizeof(err)) != 0)
        return sl_fail(ctx, "report: %s", err);
    int rc = SL_OK;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        bson_t line = BSON_INITIALIZER;
        eval_example_write(&ex[i], s->want, &line);
        if (sl_records_write(w, &line, err, sizeof(err)) != 0)
            rc = sl_fail(ctx, "report: %s", err);
        bson_destroy(&line);
    }
    if (sl_records_close(w, err, sizeof(err)) != 0 && rc == SL_OK)
        rc = sl_fail(ctx, "report: %s", err);
    return rc;
}

int model_eval_run(sl_ctx *ctx, bson_t *figures) {
    const char *model_dir = sl_input_path(ctx, "model"), *data = sl_input_path(ctx, "dataset");
    if (!model_dir || !data)
        return sl_fail(ctx, "model evaluation needs the inputs 'model' (a train step's model) and "
                            "'dataset' (an instruction dataset with a test split)");
    eval_settings s;
    int rc = read_settings(ctx, &s);
    if (rc != SL_OK)
        return rc;
    char err[1024];
    dataset *d = NULL;
    if (dataset_load(data, DATASET_INSTRUCTION, s.split, &d, err, sizeof(err)) != 0)
        return sl_fail(ctx, "input 'dataset': %s", err);
    dataset view = *d; /* the examples evaluated: the split's first max_examples */
    if (s.max_examples && s.max_examples < view.n)
        view.n = s.max_examples;
    size_t n = view.n;
    model_folder f;
    eval_example *ex = calloc(n, sizeof(*ex));
    textscore_bleu corpus = {0};
    size_t truncated = 0;
    if (!ex) {
        dataset_free(d);
        return sl_fail(ctx, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        ex[i].index = i;
        ex[i].instruction = d->ex[i].a;
        ex[i].reference = d->ex[i].b;
    }
    if (model_folder_open(model_dir, 1, &f, err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "input 'model': %s", err);
    else
        sl_log(ctx, SL_LOG_INFO, "%s model, %zu parameters%s; %zu %s examples of %zu",
               model_get_config(f.m)->model_type, model_param_count(f.m),
               f.lora_r ? ", LoRA adapter merged" : "", n, s.split, d->n);
    if (rc == SL_OK && s.want[EVAL_PERPLEXITY])
        rc = score_perplexity(ctx, &f, &view, ex, &truncated);
    int generate = s.want[EVAL_ROUGE_L] || s.want[EVAL_BLEU] || s.want[EVAL_EXACT_MATCH] ||
                   s.want[EVAL_LENGTH];
    for (size_t i = 0; generate && rc == SL_OK && i < n; i++) {
        rc = generate_one(ctx, &f, &s, &ex[i], &corpus);
        if (rc == SL_OK && (i + 1) % 10 == 0 && i + 1 < n) /* a real model is slow */
            sl_log(ctx, SL_LOG_INFO, "answered %zu of %zu", i + 1, n);
        if (rc == SL_OK && sl_cancelled(ctx))
            rc = SL_ECANCELLED;
    }
    if (rc == SL_OK)
        rc = write_report(ctx, &s, ex, n);
    if (rc == SL_OK)
        rc = aggregate(ctx, &s, ex, n, &corpus, truncated, figures);
    for (size_t i = 0; i < n; i++)
        free(ex[i].answer);
    free(ex);
    model_folder_close(&f);
    dataset_free(d);
    return rc;
}
