/* The train step's learning-rate schedules against HF transformers'
 * formulas evaluated in Python (tests/ref/lr_ref.py), and its checkpoints
 * of the training state: round trip, replacing, pruning, and half-written
 * ones passed over on resume. */
#include "lr_schedule.h"
#include "train_ckpt.h"
#include "train_tests.h"

#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ---- learning-rate schedules ---- */

static void check_schedule(const char *kind, uint64_t warmup, uint64_t total, double lr,
                           double min_lr) {
    if (access("/usr/bin/python3", X_OK) != 0)
        SKIP_UNLESS_REQUIRED("no /usr/bin/python3");
    static const uint64_t steps[] = {0, 1, 2, 5, 9, 10, 11, 37, 50, 63, 98, 99, 100, 101, 150};
    enum { N = sizeof(steps) / sizeof(steps[0]) };
    char args[1024], *at = args;
    at += sprintf(at, "%s %llu %llu %.17g %.17g", kind, (unsigned long long)warmup,
                  (unsigned long long)total, lr, min_lr);
    for (size_t i = 0; i < N; i++)
        at += sprintf(at, " %llu", (unsigned long long)steps[i]);
    double want[N];
    cr_assert_eq(run_ref("lr_ref.py", args, want, N), N);
    lr_schedule s = {.lr = lr, .min_lr = min_lr, .warmup_steps = warmup, .total_steps = total};
    cr_assert_eq(lr_kind_parse(kind, &s.kind), 0);
    for (size_t i = 0; i < N; i++) {
        double got = lr_at(&s, steps[i]);
        cr_expect(fabs(got - want[i]) <= 1e-15 * fmax(1e-300, fabs(want[i])) + 1e-300,
                  "%s warmup %llu total %llu: step %llu gives %.17g, HF %.17g", kind,
                  (unsigned long long)warmup, (unsigned long long)total,
                  (unsigned long long)steps[i], got, want[i]);
    }
}

Test(lr_schedule, linear_with_warmup_as_hf) {
    check_schedule("linear", 10, 100, 3e-4, 0);
    check_schedule("linear", 0, 100, 2e-6, 0);
    check_schedule("linear", 10, 5, 1e-3, 0); /* fewer steps than warmup */
}

Test(lr_schedule, cosine_with_warmup_as_hf) {
    check_schedule("cosine", 10, 100, 3e-4, 0);
    check_schedule("cosine", 0, 37, 1e-3, 0);
}

Test(lr_schedule, cosine_to_a_floor_as_hf) { check_schedule("cosine", 10, 100, 3e-4, 3e-5); }

Test(lr_schedule, constant_with_warmup_as_hf) { check_schedule("constant", 10, 100, 5e-4, 0); }

Test(lr_schedule, unknown_kinds_are_refused) {
    lr_kind k;
    cr_expect_eq(lr_kind_parse("cosine_with_restarts", &k), -1);
}

/* ---- checkpoints ---- */

static char root[64];

static void make_root(void) {
    snprintf(root, sizeof(root), "/tmp/sluice-ckpt-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
}

static void remove_root(void) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(ckpt, .init = make_root, .fini = remove_root);

static const float w_m[12] = {1, -2, 3, 4.5f, 5, 6, 7, 8, 9, 10, 11, 1e-8f};
static const float w_v[12] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1, 2, 3};
static const float b_m[5] = {-1, -2, -3, -4, -5}, b_v[5] = {1e-3f, 2e-3f, 3e-3f, 4e-3f, 5e-3f};

static ckpt_state state_at(uint64_t step) {
    return (ckpt_state){.step = step,
                        .epoch = 2,
                        .index = 7,
                        .offset = 3,
                        .rng = {0xffffffffffffffffull, 0x8000000000000001ull, 42, step}};
}

static void write_checkpoint(uint64_t step) {
    char err[512];
    ckpt_writer *w;
    cr_assert_eq(ckpt_writer_begin(root, step, &w, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ckpt_writer_add_moments(w, "model.layers.0.w", w_m, w_v, 2, (uint64_t[]){3, 4},
                                         err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(ckpt_writer_add_moments(w, "b", b_m, b_v, 1, (uint64_t[]){5}, err, sizeof(err)), 0,
                 "%s", err);
    /* the caller's own file (the weights) goes into the same folder */
    char path[512];
    snprintf(path, sizeof(path), "%s/model.safetensors", ckpt_writer_dir(w));
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "weights of step %llu", (unsigned long long)step);
    fclose(f);
    ckpt_state st = state_at(step);
    cr_assert_eq(ckpt_writer_commit(w, &st, err, sizeof(err)), 0, "%s", err);
}

static uint64_t latest(void) {
    uint64_t step = 0;
    char path[512], err[512];
    int rc = ckpt_latest(root, &step, path, sizeof(path), err, sizeof(err));
    cr_assert_geq(rc, 0, "%s", err);
    return rc ? step : UINT64_MAX;
}

Test(ckpt, state_and_moments_round_trip) {
    write_checkpoint(120);
    uint64_t step;
    char dir[512], err[512];
    cr_assert_eq(ckpt_latest(root, &step, dir, sizeof(dir), err, sizeof(err)), 1, "%s", err);
    cr_expect_eq(step, 120);
    ckpt_state st, want = state_at(120);
    cr_assert_eq(ckpt_read_state(dir, &st, err, sizeof(err)), 0, "%s", err);
    cr_expect(memcmp(&st, &want, sizeof(st)) == 0, "the state reads back bit for bit");
    float m[12], v[12];
    cr_assert_eq(ckpt_read_moments(dir, "model.layers.0.w", m, v, 12, err, sizeof(err)), 0, "%s",
                 err);
    cr_expect(memcmp(m, w_m, sizeof(m)) == 0 && memcmp(v, w_v, sizeof(v)) == 0);
    cr_assert_eq(ckpt_read_moments(dir, "b", m, v, 5, err, sizeof(err)), 0, "%s", err);
    cr_expect(memcmp(m, b_m, sizeof(b_m)) == 0 && memcmp(v, b_v, sizeof(b_v)) == 0);
    cr_expect_eq(ckpt_read_moments(dir, "c", m, v, 5, err, sizeof(err)), -ENOENT);
    cr_expect(strstr(err, "c.exp_avg") != NULL, "%s", err);
    cr_expect_eq(ckpt_read_moments(dir, "b", m, v, 4, err, sizeof(err)), -EINVAL);
    char path[600];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    cr_expect_eq(access(path, R_OK), 0, "the caller's file moved with the checkpoint");
}

Test(ckpt, no_checkpoint_yet) {
    cr_expect_eq(latest(), UINT64_MAX);
    char missing[128], path[256], err[256];
    uint64_t step;
    snprintf(missing, sizeof(missing), "%s/not-there", root);
    cr_expect_eq(ckpt_latest(missing, &step, path, sizeof(path), err, sizeof(err)), 0);
}

static void write_file(const char *dir, const char *name, const char *text, size_t len) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fwrite(text, 1, len, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to) {
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    cr_assert_eq(system(cmd), 0);
}

Test(ckpt, half_written_checkpoints_are_passed_over_on_resume) {
    write_checkpoint(10);
    /* a writer killed before its commit (as by kill -9) */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        ckpt_writer *w;
        if (ckpt_writer_begin(root, 20, &w, NULL, 0) == 0)
            ckpt_writer_add_moments(w, "b", b_m, b_v, 1, (uint64_t[]){5}, NULL, 0);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s/.checkpoint-20.tmp", root);
    cr_assert_eq(access(tmp, F_OK), 0, "the killed writer left its temporary folder");
    /* folders named like checkpoints, whole or not: a truncated optimizer
     * file, a missing one, a state of another step, a state cut short */
    char good[256], dir[256], from[512], to[512];
    snprintf(good, sizeof(good), "%s/checkpoint-10", root);
    const struct {
        const char *name;
        int optimizer; /* 0 none, 1 whole, 2 cut */
        const char *state;
    } bad[] = {
        {"checkpoint-30", 2, NULL},
        {"checkpoint-40", 0, NULL},
        {"checkpoint-50", 1, NULL}, /* its state says step 10 */
        {"checkpoint-60", 1, "{\"format\": 1, \"step\": 60, \"epo"},
        {"checkpoint-7x", 1, NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(dir, sizeof(dir), "%s/%s", root, bad[i].name);
        cr_assert_eq(mkdir(dir, 0777), 0);
        snprintf(from, sizeof(from), "%s/trainer_state.json", good);
        snprintf(to, sizeof(to), "%s/trainer_state.json", dir);
        if (bad[i].state)
            write_file(dir, "trainer_state.json", bad[i].state, strlen(bad[i].state));
        else
            copy_file(from, to);
        snprintf(from, sizeof(from), "%s/optimizer.safetensors", good);
        snprintf(to, sizeof(to), "%s/optimizer.safetensors", dir);
        if (bad[i].optimizer)
            copy_file(from, to);
        if (bad[i].optimizer == 2)
            cr_assert_eq(truncate(to, 100), 0);
    }
    /* 30 and 40 copied step 10's state: fix their step so that only the
     * broken optimizer file disqualifies them */
    for (int s = 30; s <= 40; s += 10) {
        char text[256];
        int n = snprintf(text, sizeof(text),
                         "{\"format\": 1, \"step\": %d, \"epoch\": 0, \"index\": 0, \"offset\": 0, "
                         "\"rng\": [\"0000000000000000\", \"0000000000000000\", "
                         "\"0000000000000000\", \"0000000000000000\"], \"tensors\": 2}",
                         s);
        snprintf(dir, sizeof(dir), "%s/checkpoint-%d", root, s);
        write_file(dir, "trainer_state.json", text, (size_t)n);
    }
    cr_expect_eq(latest(), 10, "only the complete checkpoint counts");
    /* the next checkpoint of step 20 is written over the leftover */
    write_checkpoint(20);
    cr_expect_eq(latest(), 20);
}

Test(ckpt, the_same_step_again_replaces_it) {
    write_checkpoint(5);
    write_checkpoint(5);
    cr_expect_eq(latest(), 5);
    char path[256];
    snprintf(path, sizeof(path), "%s/.checkpoint-5.old", root);
    cr_expect_neq(access(path, F_OK), 0, "nothing left aside");
}

Test(ckpt, prune_keeps_the_newest) {
    write_checkpoint(1);
    write_checkpoint(2);
    write_checkpoint(3);
    char tmp[256], err[256];
    snprintf(tmp, sizeof(tmp), "%s/.checkpoint-4.tmp", root);
    cr_assert_eq(mkdir(tmp, 0777), 0);
    cr_assert_eq(ckpt_prune(root, 2, err, sizeof(err)), 0, "%s", err);
    char path[256];
    for (int s = 1; s <= 3; s++) {
        snprintf(path, sizeof(path), "%s/checkpoint-%d", root, s);
        cr_expect_eq(access(path, F_OK) == 0, s >= 2, "checkpoint-%d", s);
    }
    cr_expect_neq(access(tmp, F_OK), 0, "leftover temporary folders go");
    cr_expect_eq(latest(), 3);
}

Test(ckpt, a_bad_state_file_is_named) {
    char dir[256], err[512];
    snprintf(dir, sizeof(dir), "%s/checkpoint-1", root);
    cr_assert_eq(mkdir(dir, 0777), 0);
    write_file(dir, "trainer_state.json", "{\"format\": 1, \"step\": 1}", 24);
    ckpt_state st;
    cr_expect_eq(ckpt_read_state(dir, &st, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "trainer_state.json") != NULL, "%s", err);
}
