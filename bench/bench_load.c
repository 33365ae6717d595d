/* bench_load - loading and validating a 10,000-step pipeline.
 *
 * Generates a lattice pipeline 10 steps wide and 1,000 deep (each step takes
 * a data input from the step above it and runs after its neighbour above),
 * then times, best of several rounds, in the same run:
 *   - libyaml's bare event parse of the same bytes: the floor for any loader
 *     built on libyaml, since sluice's loader consumes exactly these events;
 *   - sluice's full load: YAML tree, schema, substitution, references, DAG
 *     and cycle check;
 *   - PyYAML with its libyaml-backed CSafeLoader, a peer many pipeline tools
 *     (Airflow, DVC, ZenML) load their YAML with, when /usr/bin/python3 has it.
 * It prints the times and the ratios. */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "bench.h"

#include "buf.h"
#include "diag.h"
#include "pipeline.h"

#define WIDTH 10
#define DEPTH 1000
#define ROUNDS 7

static void generate(buf *b) {
    buf_puts(b, "version: 1\npipeline: lattice\ndescription: a generated 10x1000 lattice\n"
                "params:\n  size: 500\n  overlap: 50\n  model: tiny\n"
                "settings: {cache: true, jobs: 2}\nsteps:\n");
    for (int d = 0; d < DEPTH; d++)
        for (int w = 0; w < WIDTH; w++) {
            buf_printf(b, "  s%d_%d:\n    uses: chunk\n", d, w);
            buf_printf(b,
                       "    with: {chunk_size: \"${params.size}\", overlap: \"${params.overlap}\", "
                       "label: \"step %d of column %d\"}\n",
                       d, w);
            if (d > 0) {
                buf_printf(b, "    inputs: {documents: s%d_%d.chunks}\n", d - 1, w);
                if (w > 0)
                    buf_printf(b, "    after: [s%d_%d]\n", d - 1, w - 1);
            }
            buf_puts(b, "    retries: {max: 2, backoff: 1s}\n    timeout: 10m\n");
        }
}

static double time_libyaml(const buf *b) {
    double t0 = now();
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)b->data, b->len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            fprintf(stderr, "bench_load: libyaml failed\n");
            exit(1);
        }
        int end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (end)
            break;
    }
    yaml_parser_delete(&p);
    return now() - t0;
}

static double time_sluice(const buf *b) {
    diag_list d = DIAG_LIST_INIT;
    pipeline *p = NULL;
    double t0 = now();
    int rc = pipeline_load_buffer(b->data, b->len, "lattice.yaml", NULL, NULL, &d, &p);
    double t = now() - t0;
    if (rc || p->n_steps != WIDTH * DEPTH) {
        diag_print(&d, stderr);
        fprintf(stderr, "bench_load: the generated pipeline did not load\n");
        exit(1);
    }
    pipeline_free(p);
    diag_clear(&d);
    return t;
}

/* PyYAML's best of ROUNDS, timed inside Python; negative when unavailable. */
static double time_pyyaml(const buf *b) {
    char path[] = "/tmp/sluice-bench-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    fwrite(b->data, 1, b->len, f);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import sys,time,yaml\n"
             "d=open(sys.argv[1]).read()\n"
             "best=min((lambda t:(yaml.load(d,Loader=yaml.CSafeLoader),time.perf_counter()-t)[1])"
             "(time.perf_counter()) for _ in range(%d))\n"
             "print(best)' %s 2>/dev/null",
             ROUNDS, path);
    FILE *py = popen(cmd, "r");
    double t = -1;
    if (py) {
        if (fscanf(py, "%lf", &t) != 1)
            t = -1;
        if (pclose(py) != 0)
            t = -1;
    }
    unlink(path);
    return t;
}

int main(void) {
    buf b = BUF_INIT;
    generate(&b);
    if (buf_failed(&b))
        return 1;
    double floor = 1e9, ours = 1e9;
    for (int r = 0; r < ROUNDS; r++) {
        double a = time_libyaml(&b), s = time_sluice(&b);
        floor = a < floor ? a : floor;
        ours = s < ours ? s : ours;
    }
    double py = time_pyyaml(&b);
    printf("bench_load: %d steps, %.2f MB of YAML, best of %d\n", WIDTH * DEPTH, b.len / 1e6,
           ROUNDS);
    printf("  libyaml event parse (floor)     %8.2f ms\n", floor * 1e3);
    printf("  sluice load + validate + DAG    %8.2f ms   %.2fx the floor, %.2f us/step\n",
           ours * 1e3, ours / floor, ours * 1e6 / (WIDTH * DEPTH));
    if (py > 0)
        printf("  PyYAML CSafeLoader (tree only)  %8.2f ms   sluice is %.2fx faster\n", py * 1e3,
               py / ours);
    else
        printf("  PyYAML CSafeLoader: not available (/usr/bin/python3 with python3-yaml)\n");
    buf_free(&b);
    return 0;
}
