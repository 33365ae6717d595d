/* bench_text - clean and chunk throughput on a generated 50 MB corpus,
 * beside a plain memory copy of the same bytes (the physical floor), and
 * the Handbook's own Python rules (re) on a 5 MB part of it, in one run. */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#include "text.h"

#define CORPUS_MB 50
#define DOC_BYTES 20000

/* Words of several scripts, markup, emoji and sentence ends, as crawled
 * articles have them. Deterministic. */
static char *corpus(size_t size) {
    static const char *const words[] = {
        "the",     "model", "learns", "from",      "articles",
        "written", "by",    "its",    "author",    "fine-tuning",
        "LLM",     "e.g.",  "Mr.",    "3.14",      "naïve",
        "façade",  "東京",  "Москва", "**bold**",  "[link](http://x.y)",
        "🔧",       "—",     "data,",  "pipeline;", "(retrieval)",
    };
    static const char *const ends[] = {". ", "? ", "! ", " ", " ", " ", " ", "\n\n", " "};
    char *text = malloc(size + 64);
    size_t len = 0;
    unsigned seed = 42;
    while (len < size) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 8) % (sizeof(words) / sizeof(words[0]))];
        const char *e = ends[(seed >> 20) % (sizeof(ends) / sizeof(ends[0]))];
        size_t wl = strlen(w), el = strlen(e);
        if (len + wl + el > size)
            break;
        memcpy(text + len, w, wl);
        memcpy(text + len + wl, e, el);
        len += wl + el;
    }
    text[len] = '\0';
    return text;
}

int main(void) {
    size_t size = (size_t)CORPUS_MB << 20;
    char *text = corpus(size);
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    double best_copy = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        memcpy(copy, text, len);
        double t = now() - t0;
        if (t < best_copy)
            best_copy = t;
    }
    /* Clean, document by document. */
    double t0 = now();
    char *cleaned = malloc(len + 1);
    size_t clen = 0;
    for (size_t off = 0; off < len; off += DOC_BYTES) {
        size_t n = len - off < DOC_BYTES ? len - off : DOC_BYTES;
        char *out;
        size_t out_len;
        if (text_clean(text + off, n, &out, &out_len) != 0)
            return 1;
        memcpy(cleaned + clen, out, out_len);
        clen += out_len;
        cleaned[clen++] = ' ';
        free(out);
    }
    double clean_t = now() - t0;
    t0 = now();
    size_t chunks = 0;
    for (size_t off = 0; off < clen; off += DOC_BYTES) {
        size_t n = clen - off < DOC_BYTES ? clen - off : DOC_BYTES;
        char **c;
        size_t k;
        if (text_chunk_article(cleaned + off, n, 1000, 2000, &c, &k) != 0)
            return 1;
        chunks += k;
        text_chunks_free(c, k);
    }
    double chunk_t = now() - t0;
    double mb = (double)len / (1 << 20);
    printf("bench_text: %.1f MB generated corpus (mixed scripts, markup, emoji), %d KB documents\n",
           mb, DOC_BYTES / 1000);
    printf("  memcpy (floor)      %8.0f MB/s\n", mb / best_copy);
    printf("  clean               %8.1f MB/s  %.3f of memcpy\n", mb / clean_t, best_copy / clean_t);
    printf("  chunk (articles)    %8.1f MB/s  %.3f of memcpy, %zu chunks\n",
           (double)clen / (1 << 20) / chunk_t, best_copy / chunk_t * len / clen, chunks);

    /* The Handbook's rules in Python, on 5 MB of the same corpus. */
    if (access("/usr/bin/python3", X_OK) == 0) {
        char path[] = "/tmp/sluice-bench-text-XXXXXX";
        int fd = mkstemp(path);
        size_t part = (size_t)5 << 20;
        if (fd >= 0 && write(fd, text, part) == (ssize_t)part) {
            close(fd);
            char cmd[1024];
            snprintf(cmd, sizeof(cmd),
                     "/usr/bin/python3 -c 'import re,time,sys\n"
                     "t=open(sys.argv[1],encoding=\"utf-8\",errors=\"replace\").read()\n"
                     "s=time.perf_counter()\n"
                     "c=re.sub(r\"\\s+\",\" \",re.sub(r\"[^\\w\\s.,!?]\",\" \",t)).strip()\n"
                     "print(len(t.encode())/2**20/(time.perf_counter()-s))' %s",
                     path);
            FILE *py = popen(cmd, "r");
            double rate = 0;
            if (py && fscanf(py, "%lf", &rate) == 1)
                printf("  Python re clean     %8.1f MB/s  sluice is %.1fx faster\n", rate,
                       mb / clean_t / rate);
            if (py)
                pclose(py);
        }
        unlink(path);
    }
    free(text);
    free(copy);
    free(cleaned);
    return 0;
}
