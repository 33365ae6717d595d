/* dsgen_offline.c - the offline generator (dsgen_offline.h).
 *
 * Per extract: its sentences (text_sentence_spans, the chunk step's rule)
 * are gathered in order into runs of at least max(min_answer, length /
 * pairs) code points, a short last run joining the one before; each run is
 * one sample's answer, so an extract gives at most `pairs`. A run whose
 * first sentence is a question ("Why not use whole documents?") followed by
 * enough text is that question and the rest; otherwise the instruction is
 * a template ("Explain X.", "Write a short article section about X.", ...)
 * around X, the run's phrase of one to three adjacent words, none a stop
 * word, with the highest sum of idf * (1 + log tf): idf over the extracts,
 * tf within the run. A phrase is used once per extract; a template is
 * picked by the seed and, when the instruction exists already, the next
 * one is tried. Words are compared in ASCII lower case. */
#include "dsgen_offline.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strtab.h"
#include "text.h"

/* Instruction templates: what goes before the topic, and after it. */
static const char *const templates[][2] = {
    {"Explain ", "."},
    {"Write a short article section about ", "."},
    {"Describe ", "."},
    {"What should one know about ", "?"},
    {"Write a paragraph about ", "."},
    {"Summarize the main points about ", "."},
};
#define N_TEMPLATES (sizeof(templates) / sizeof(templates[0]))

/* Words that never name a topic. */
static const char *const stop_words[] = {
    "a",          "about",   "above",  "after",    "again",   "against",   "all",     "also",
    "am",         "an",      "and",    "any",      "are",     "as",        "at",      "be",
    "because",    "been",    "before", "being",    "below",   "between",   "both",    "but",
    "by",         "can",     "could",  "did",      "do",      "does",      "doing",   "down",
    "during",     "each",    "even",   "every",    "few",     "for",       "from",    "further",
    "get",        "gets",    "got",    "had",      "has",     "have",      "having",  "he",
    "her",        "here",    "hers",   "him",      "his",     "how",       "however", "i",
    "if",         "in",      "into",   "is",       "it",      "its",       "itself",  "just",
    "let",        "like",    "make",   "makes",    "many",    "may",       "me",      "might",
    "more",       "most",    "much",   "must",     "my",      "no",        "nor",     "not",
    "now",        "of",      "off",    "on",       "once",    "one",       "only",    "or",
    "other",      "our",     "ours",   "out",      "over",    "own",       "really",  "same",
    "say",        "says",    "see",    "she",      "should",  "so",        "some",    "still",
    "such",       "than",    "that",   "the",      "their",   "them",      "then",    "there",
    "these",      "they",    "thing",  "things",   "this",    "those",     "through", "to",
    "too",        "two",     "under",  "until",    "up",      "us",        "use",     "used",
    "uses",       "using",   "very",   "want",     "was",     "way",       "we",      "well",
    "were",       "what",    "when",   "where",    "whether", "which",     "while",   "who",
    "whom",       "why",     "will",   "with",     "within",  "without",   "would",   "yet",
    "you",        "your",    "yours",  "s",        "t",       "ll",        "ve",      "re",
    "d",          "m",       "don",    "isn",      "doesn",   "little",    "slow",    "fast",
    "bit",        "new",     "old",    "good",     "bad",     "small",     "large",   "big",
    "first",      "last",    "next",   "long",     "short",   "different", "whole",   "less",
    "least",      "often",   "never",  "always",   "back",    "already",   "another", "enough",
    "else",       "instead", "rather", "quite",    "almost",  "something", "nothing", "anything",
    "everything", "someone", "stale",  "easy",     "hard",    "better",    "best",    "worse",
    "without",    "since",   "though", "although", "done",    "put",
};

/* A word of an extract: bytes [start, end), its id in the vocabulary,
 * whether it is joined to the next word by one space only (a phrase may
 * continue), and whether it begins a sentence. */
typedef struct word {
    size_t start, end;
    uint32_t id;
    unsigned char joined, sentence_start;
} word;

typedef struct run {
    size_t first, end; /* sentences [first, end) */
} run;

/* One extract as the generator sees it. */
typedef struct prepared {
    text_span *sent;
    size_t n_sent;
    run *runs;
    size_t n_runs;
    word *words;
    size_t n_words;
} prepared;

typedef struct gen {
    dsgen_set *set;
    const dsgen_extract *ex;
    size_t n;
    prepared *p;
    strtab vocab;
    uint32_t *df;        /* per vocabulary id: extracts holding the word */
    size_t *last_seen;   /* per vocabulary id: the last extract counted + 1 */
    unsigned char *stop; /* per vocabulary id */
    size_t df_cap;
    uint64_t seed;
    dsgen_offline_stats *stats;
} gen;

static int is_word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '\'' || c >= 0x80;
}

static void lower_ascii(char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
}

static int grow_vocab(gen *g) {
    if (g->vocab.n <= g->df_cap)
        return 0;
    size_t cap = g->df_cap ? g->df_cap * 2 : 1024;
    while (cap < g->vocab.n)
        cap *= 2;
    uint32_t *df = realloc(g->df, cap * sizeof(*df));
    if (df)
        g->df = df;
    size_t *seen = df ? realloc(g->last_seen, cap * sizeof(*seen)) : NULL;
    if (seen)
        g->last_seen = seen;
    unsigned char *stop = seen ? realloc(g->stop, cap) : NULL;
    if (!stop)
        return -ENOMEM;
    g->stop = stop;
    memset(g->df + g->df_cap, 0, (cap - g->df_cap) * sizeof(*g->df));
    memset(g->last_seen + g->df_cap, 0, (cap - g->df_cap) * sizeof(*g->last_seen));
    memset(g->stop + g->df_cap, 0, cap - g->df_cap);
    g->df_cap = cap;
    return 0;
}

/* The words of extract e, their vocabulary ids, and the document
 * frequencies. */
static int read_words(gen *g, size_t e) {
    const char *t = g->ex[e].text;
    size_t len = g->ex[e].len, cap = 0, s = 0;
    prepared *p = &g->p[e];
    char key[64];
    for (size_t i = 0; i < len;) {
        if (!is_word_byte((unsigned char)t[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && is_word_byte((unsigned char)t[i]))
            i++;
        size_t end = i;
        while (end > start && (t[end - 1] == '\'' || t[end - 1] == '-'))
            end--;
        while (start < end && (t[start] == '\'' || t[start] == '-'))
            start++;
        if (start == end || end - start >= sizeof(key))
            continue;
        if (p->n_words == cap) {
            cap = cap ? cap * 2 : 256;
            word *w = realloc(p->words, cap * sizeof(*w));
            if (!w)
                return -ENOMEM;
            p->words = w;
        }
        memcpy(key, t + start, end - start);
        lower_ascii(key, end - start);
        uint32_t id;
        if (strtab_intern(&g->vocab, key, end - start, &id) || grow_vocab(g))
            return -ENOMEM;
        if (g->last_seen[id] != e + 1) {
            g->last_seen[id] = e + 1;
            g->df[id]++;
        }
        while (s < p->n_sent && p->sent[s].end <= start)
            s++;
        word *w = &p->words[p->n_words++];
        *w = (word){start, end, id, 0, s < p->n_sent && p->sent[s].start == start};
        /* Joined: exactly one space, then the next word's first byte. */
        w->joined = i + 1 < len && t[i] == ' ' && is_word_byte((unsigned char)t[i + 1]) && end == i;
    }
    return 0;
}

/* Runs of sentences of at least target code points. */
static int make_runs(gen *g, size_t e, size_t pairs) {
    prepared *p = &g->p[e];
    const char *t = g->ex[e].text;
    size_t total = dsgen_cp_len(t, g->ex[e].len);
    size_t target = (total + pairs - 1) / pairs;
    if (target < g->set->min_answer)
        target = g->set->min_answer;
    p->runs = malloc((p->n_sent ? p->n_sent : 1) * sizeof(*p->runs));
    if (!p->runs)
        return -ENOMEM;
    size_t first = 0, acc = 0;
    for (size_t i = 0; i < p->n_sent; i++) {
        acc += dsgen_cp_len(t + p->sent[i].start, p->sent[i].end - p->sent[i].start) + 1;
        if (acc >= target) {
            p->runs[p->n_runs++] = (run){first, i + 1};
            first = i + 1;
            acc = 0;
        }
    }
    if (first < p->n_sent) {
        if (acc < g->set->min_answer && p->n_runs > 0)
            p->runs[p->n_runs - 1].end = p->n_sent;
        else
            p->runs[p->n_runs++] = (run){first, p->n_sent};
    }
    if (p->n_runs > pairs)
        p->n_runs = pairs;
    return 0;
}

static char *span_dup(const char *t, size_t start, size_t end) {
    char *s = malloc(end - start + 1);
    if (s) {
        memcpy(s, t + start, end - start);
        s[end - start] = '\0';
    }
    return s;
}

/* A word that may be part of a topic: no stop word, three bytes or more,
 * not only digits. */
static int topic_word(const gen *g, size_t e, const word *w) {
    if (g->stop[w->id] || w->end - w->start < 3)
        return 0;
    for (size_t i = w->start; i < w->end; i++)
        if (g->ex[e].text[i] < '0' || g->ex[e].text[i] > '9')
            return 1;
    return 0;
}

/* The best phrase of sentences [first, end) of extract e not in used
 * (lower-cased phrases, separated by '\n'): words [*w0, *w1). 0 when none. */
static int best_phrase(const gen *g, size_t e, const run *r, size_t from_sent, const char *used,
                       size_t *w0, size_t *w1) {
    const prepared *p = &g->p[e];
    size_t lo = p->sent[from_sent].start, hi = p->sent[r->end - 1].end;
    size_t a = 0, b;
    while (a < p->n_words && p->words[a].start < lo)
        a++;
    for (b = a; b < p->n_words && p->words[b].end <= hi;)
        b++;
    double best = 0;
    int found = 0;
    for (size_t i = a; i < b; i++) {
        double idf_sum = 0;
        for (size_t k = 0; k < 3 && i + k < b; k++) {
            const word *w = &p->words[i + k];
            if (!topic_word(g, e, w) || (k > 0 && !p->words[i + k - 1].joined))
                break;
            int repeated = 0;
            for (size_t j = i; j < i + k && !repeated; j++)
                repeated = p->words[j].id == w->id;
            if (repeated)
                break;
            idf_sum += log((double)(g->n + 1) / (double)g->df[w->id]);
            size_t in_run = 0, in_extract = 0;
            for (size_t j = 0; j + k < p->n_words; j++) {
                int same = 1;
                for (size_t m = 0; m <= k && same; m++)
                    same = p->words[j + m].id == p->words[i + m].id &&
                           (m == k || p->words[j + m].joined);
                in_extract += same;
                in_run += same && j >= a && j + k < b;
            }
            /* One word names a topic when the extract repeats it. */
            double score = idf_sum * (1 + log((double)in_run)) * (in_extract >= 2 ? 2 : 1);
            if ((k == 0 && in_extract < 2) || score <= best)
                continue;
            /* Not used before in this extract. */
            char key[200];
            size_t kl = 0;
            for (size_t j = i; j <= i + k; j++) {
                size_t wl = p->words[j].end - p->words[j].start;
                if (kl + wl + 2 >= sizeof(key))
                    break;
                if (j > i)
                    key[kl++] = ' ';
                memcpy(key + kl, g->ex[e].text + p->words[j].start, wl);
                kl += wl;
            }
            key[kl] = '\0';
            lower_ascii(key, kl);
            const char *u = used;
            int seen = 0;
            while (u && *u && !seen) {
                const char *nl = strchr(u, '\n');
                seen = (size_t)(nl - u) == kl && memcmp(u, key, kl) == 0;
                u = nl + 1;
            }
            if (seen)
                continue;
            best = score;
            *w0 = i;
            *w1 = i + k + 1;
            found = 1;
        }
    }
    return found;
}

/* The phrase as the instruction writes it: the text's words, the first
 * lower-cased when only a sentence start made it a capital. */
static char *phrase_text(const gen *g, size_t e, size_t w0, size_t w1) {
    const prepared *p = &g->p[e];
    const char *t = g->ex[e].text;
    char *s = span_dup(t, p->words[w0].start, p->words[w1 - 1].end);
    if (!s)
        return NULL;
    size_t l0 = p->words[w0].end - p->words[w0].start;
    int capitalised_only = s[0] >= 'A' && s[0] <= 'Z';
    for (size_t i = 1; i < l0 && capitalised_only; i++)
        capitalised_only = !(s[i] >= 'A' && s[i] <= 'Z');
    if (p->words[w0].sentence_start && capitalised_only)
        s[0] = (char)(s[0] - 'A' + 'a');
    if (w1 - w0 == 1 && s[0] >= 'a' && s[0] <= 'z') { /* "the store", not "store" */
        char *the = malloc(strlen(s) + 5);
        if (the)
            snprintf(the, strlen(s) + 5, "the %s", s);
        free(s);
        s = the;
    }
    return s;
}

/* A degraded copy of the chosen answer (sentences [first, end) of extract
 * e), by the method the state picks: another extract's run, the chosen
 * cut in half inside a sentence, or its sentences in another order.
 * NULL on no memory. */
static char *degrade(gen *g, size_t e, size_t first, size_t end, uint64_t *state) {
    const prepared *p = &g->p[e];
    const char *t = g->ex[e].text;
    int method = (int)(dsgen_next(state) % 3);
    if (method == 0 && g->n > 1) {
        size_t j = (e + 1 + (size_t)(dsgen_next(state) % (g->n - 1))) % g->n;
        const prepared *q = &g->p[j];
        if (q->n_runs > 0) {
            const run *r = &q->runs[dsgen_next(state) % q->n_runs];
            g->stats->rejected_other++;
            return span_dup(g->ex[j].text, q->sent[r->first].start, q->sent[r->end - 1].end);
        }
    }
    if (method == 2 && end - first >= 2) {
        size_t m = end - first, total = 0;
        size_t *order = malloc(m * sizeof(*order));
        if (!order)
            return NULL;
        for (size_t i = 0; i < m; i++) {
            order[i] = first + i;
            total += p->sent[first + i].end - p->sent[first + i].start + 1;
        }
        for (size_t i = m; i > 1; i--) {
            size_t j = (size_t)(dsgen_next(state) % i), x = order[i - 1];
            order[i - 1] = order[j];
            order[j] = x;
        }
        int same = 1;
        for (size_t i = 0; i < m && same; i++)
            same = order[i] == first + i;
        if (same) { /* the identity: rotate by one */
            for (size_t i = 0; i < m; i++)
                order[i] = first + (i + 1) % m;
        }
        char *s = malloc(total);
        if (s) {
            size_t k = 0;
            for (size_t i = 0; i < m; i++) {
                const text_span *sp = &p->sent[order[i]];
                if (i)
                    s[k++] = ' ';
                memcpy(s + k, t + sp->start, sp->end - sp->start);
                k += sp->end - sp->start;
            }
            s[k] = '\0';
            g->stats->rejected_shuffled++;
        }
        free(order);
        return s;
    }
    /* Truncated: up to the last space before the middle, so the answer
     * stops inside a sentence; trailing marks dropped. */
    size_t lo = p->sent[first].start, hi = p->sent[end - 1].end, cut = lo + (hi - lo) / 2;
    while (cut > lo && t[cut] != ' ')
        cut--;
    while (cut > lo && (t[cut - 1] == ' ' || t[cut - 1] == '.' || t[cut - 1] == ',' ||
                        t[cut - 1] == '!' || t[cut - 1] == '?'))
        cut--;
    if (cut == lo)
        cut = lo + (hi - lo) / 2;
    while (cut > lo && ((unsigned char)t[cut] & 0xC0) == 0x80) /* not inside a sequence */
        cut--;
    g->stats->rejected_truncated++;
    return span_dup(t, lo, cut);
}

/* Whether sentence s of extract e is a question worth asking: ends with
 * '?' and has three words at least. */
static int is_question(const gen *g, size_t e, size_t s) {
    const text_span *sp = &g->p[e].sent[s];
    const char *t = g->ex[e].text;
    if (sp->end == sp->start || t[sp->end - 1] != '?')
        return 0;
    size_t spaces = 0;
    for (size_t i = sp->start; i < sp->end; i++)
        spaces += t[i] == ' ';
    return spaces >= 2;
}

/* The samples of extract e. */
static int extract_samples(gen *g, size_t e) {
    prepared *p = &g->p[e];
    const char *t = g->ex[e].text;
    const dsgen_extract *x = &g->ex[e];
    int any = 0, rc = 0;
    for (size_t r = 0; r < p->n_runs; r++)
        any |= dsgen_cp_len(t + p->sent[p->runs[r].first].start,
                            p->sent[p->runs[r].end - 1].end - p->sent[p->runs[r].first].start) >=
               g->set->min_answer;
    if (!any) {
        g->set->dropped[DSGEN_DROP_SHORT_EXTRACT]++;
        return 0;
    }
    char *used = NULL; /* phrases used, each followed by '\n' */
    size_t used_len = 0;
    for (size_t r = 0; r < p->n_runs && rc == 0; r++) {
        const run *rn = &p->runs[r];
        uint64_t state = dsgen_hash(g->seed, x->id, strlen(x->id)) ^ (uint64_t)r;
        dsgen_next(&state);
        char *instruction = NULL, *answer = NULL, *rejected = NULL;
        size_t first = rn->first;
        if (rn->end - rn->first >= 2 && is_question(g, e, rn->first) &&
            dsgen_cp_len(t + p->sent[rn->first + 1].start,
                         p->sent[rn->end - 1].end - p->sent[rn->first + 1].start) >=
                g->set->min_answer) {
            instruction = span_dup(t, p->sent[rn->first].start, p->sent[rn->first].end);
            first = rn->first + 1;
            if (!instruction)
                rc = -ENOMEM;
            else if (strtab_find(&g->set->instructions, instruction, strlen(instruction)) !=
                     STRTAB_NONE) { /* asked before: name the topic instead */
                free(instruction);
                instruction = NULL;
                first = rn->first;
            } else {
                g->stats->from_question++;
            }
        }
        if (rc == 0 && !instruction) {
            size_t w0, w1;
            if (!best_phrase(g, e, rn, rn->first, used, &w0, &w1)) {
                g->set->dropped[DSGEN_DROP_NO_TOPIC]++;
                continue;
            }
            char *phrase = phrase_text(g, e, w0, w1);
            size_t pl = phrase ? strlen(phrase) : 0;
            char *grown = phrase ? realloc(used, used_len + pl + 2) : NULL;
            if (!grown) {
                free(phrase);
                rc = -ENOMEM;
                break;
            }
            used = grown;
            memcpy(used + used_len, phrase, pl);
            lower_ascii(used + used_len, pl);
            used_len += pl;
            used[used_len++] = '\n';
            used[used_len] = '\0';
            size_t t0 = (size_t)(dsgen_next(&state) % N_TEMPLATES);
            size_t cap = pl + 64;
            for (size_t k = 0; k < N_TEMPLATES && rc == 0; k++) {
                free(instruction);
                if (!(instruction = malloc(cap))) {
                    rc = -ENOMEM;
                    break;
                }
                const char *const *tp = templates[(t0 + k) % N_TEMPLATES];
                snprintf(instruction, cap, "%s%s%s", tp[0], phrase, tp[1]);
                if (strtab_find(&g->set->instructions, instruction, strlen(instruction)) ==
                    STRTAB_NONE)
                    break;
            }
            free(phrase);
            if (rc == 0)
                g->stats->from_topic++;
        }
        if (rc == 0 && !(answer = span_dup(t, p->sent[first].start, p->sent[rn->end - 1].end)))
            rc = -ENOMEM;
        if (rc == 0 && g->set->kind == DSGEN_PREFERENCE &&
            !(rejected = degrade(g, e, first, rn->end, &state)))
            rc = -ENOMEM;
        if (rc == 0)
            rc = dsgen_set_add(g->set, e, x->category, instruction, answer, rejected);
        rc = rc < 0 ? rc : 0;
        free(instruction);
        free(answer);
        free(rejected);
    }
    free(used);
    return rc;
}

int dsgen_offline(dsgen_set *set, const dsgen_extract *ex, size_t n, size_t pairs, uint64_t seed,
                  dsgen_offline_stats *stats) {
    gen g = {set, ex,   n,    calloc(n ? n : 1, sizeof(prepared)), {0}, NULL, NULL, NULL,
             0,   seed, stats};
    int rc = g.p ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < sizeof(stop_words) / sizeof(stop_words[0]); i++) {
        uint32_t id;
        rc = strtab_intern(&g.vocab, stop_words[i], strlen(stop_words[i]), &id);
        rc = rc ? rc : grow_vocab(&g);
        if (rc == 0)
            g.stop[id] = 1;
    }
    for (size_t e = 0; rc == 0 && e < n; e++) {
        rc = text_sentence_spans(ex[e].text, ex[e].len, &g.p[e].sent, &g.p[e].n_sent);
        rc = rc ? rc : read_words(&g, e);
        rc = rc ? rc : make_runs(&g, e, pairs);
    }
    for (size_t e = 0; rc == 0 && e < n; e++)
        rc = extract_samples(&g, e);
    for (size_t e = 0; g.p && e < n; e++) {
        free(g.p[e].sent);
        free(g.p[e].runs);
        free(g.p[e].words);
    }
    free(g.p);
    strtab_free(&g.vocab);
    free(g.df);
    free(g.last_seen);
    free(g.stop);
    return rc;
}
