/* cmd_models.c - the model registry commands over kilnd's HTTP API
 * (docs/api.md, "Model registry"): `kiln models`, `kiln model show|promote|
 * rollback` and `kiln runs [compare A B]`, as text or the server's JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../core/kiln_alloc.h"
#include "cli.h"
#include "cli_util.h"
#include "jobs_cli.h"

#define HASH_SHOWN 12   /* hex digits of a sha256 shown in tables */

/* ---- arguments ---- */

static int takes_value(const char *a, const jcli_opt_t *opts)
{
    if (!strcmp(a, "--server") || !strcmp(a, "--dir"))
        return 1;
    for (; opts && opts->name; opts++)
        if (!strcmp(a, opts->name))
            return opts->value != NULL;
    return 0;
}

/* jcli_parse_args for commands with n_pos positional arguments (named by
 * pos_names, for the message when one is missing): they are taken out of
 * argv first, option values left in place.  Returns like jcli_parse_args. */
static int parse_cmd(jcli_ctx_t *c, int argc, char **argv, const jcli_opt_t *opts,
                     const char *const *pos_names, size_t n_pos, const char **pos)
{
    char **rest = kiln_calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) {
        fprintf(stderr, "kiln %s: out of memory\n", c->cmd);
        return 1;
    }
    int n_rest = 0, extra = 0;
    size_t got = 0;
    rest[n_rest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) {
            rest[n_rest++] = argv[i];
            if (takes_value(argv[i], opts) && i + 1 < argc)
                rest[n_rest++] = argv[++i];
        } else if (got < n_pos) {
            pos[got++] = argv[i];
        } else if (!extra) {
            extra = i;
        }
    }
    int r = jcli_parse_args(c, n_rest, rest, opts, NULL);
    kiln_free(rest);
    if (r)
        return r;
    if (extra)
        return ka_usage_error(c->cmd, c->usage, "unexpected argument", argv[extra]);
    if (got < n_pos) {
        char msg[96];
        snprintf(msg, sizeof msg, "missing %s", pos_names[got]);
        return ka_usage_error(c->cmd, c->usage, msg, NULL);
    }
    return 0;
}

/* s into out percent-encoded: RFC 3986's unreserved characters, and those
 * in keep, stay as they are.  0, or -1 when it does not fit in cap. */
static int url_escape(char *out, size_t cap, const char *s, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("-_.~", *p) || strchr(keep, *p);
        if (n + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return 0;
}

/* "PREFIX/ESCAPED(name)SUFFIX" into path; 0, or a usage error's status. */
static int name_path(const jcli_ctx_t *c, char *path, size_t cap, const char *prefix,
                     const char *name, const char *suffix)
{
    char esc[768];
    if (!name[0] || url_escape(esc, sizeof esc, name, "@") < 0)
        return ka_usage_error(c->cmd, c->usage, "a model name is 1 to 255 characters, got",
                              name[0] ? name : "''");
    snprintf(path, cap, "%s/%s%s", prefix, esc, suffix);
    return 0;
}

/* POSTs body (borrowed) and answers like jcli_call_json. */
static int call_post_json(const jcli_ctx_t *c, const char *path, const json_t *body, json_t **out,
                          char **raw)
{
    char *text = json_dumps(body, JSON_COMPACT);
    char *answer = NULL;
    int status, rc;
    *out = NULL;
    if (!text) {
        fprintf(stderr, "kiln %s: out of memory\n", c->cmd);
        return 1;
    }
    rc = jcli_call(c, "POST", path, text, NULL, &status, &answer);
    free(text);
    if (rc)
        return 1;
    if (status < 200 || status > 299) {
        jcli_print_server_error(c, status, answer);
        kiln_free(answer);
        return 1;
    }
    *out = json_loads(answer, 0, NULL);
    if (!json_is_object(*out)) {
        fprintf(stderr, "kiln %s: kilnd's answer to POST %s is not a JSON object\n", c->cmd, path);
        json_decref(*out);
        *out = NULL;
        kiln_free(answer);
        return 1;
    }
    *raw = answer;
    return 0;
}

/* ---- values as text ---- */

/* A number as text (a whole number as it is, a real to 6 digits), another
 * value as compact JSON, a missing one as "-". */
static void value_text(const json_t *v, char *out, size_t cap)
{
    if (!v) {
        snprintf(out, cap, "-");
    } else if (json_is_integer(v)) {
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(out, cap, "%.6g", json_real_value(v));
    } else if (json_is_string(v)) {
        snprintf(out, cap, "%s", json_string_value(v));
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(out, cap, "%s", s ? s : "?");
        free(s);
    }
}

static void time_text(long long ns, char *out, size_t cap)
{
    time_t t = (time_t)(ns / 1000000000LL);
    struct tm tm;
    if (ns <= 0 || !localtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(out, cap, "-");
}


static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of a and b (either may be NULL or not an object), each once and
 * sorted, into *keys (kiln_free it; the keys are borrowed from a and b).
 * 0, or -1 out of memory. */
static int key_union(json_t *a, json_t *b, const char ***keys, size_t *n)
{
    const char *key;
    json_t *v;
    *n = 0;
    *keys = kiln_calloc(json_object_size(a) + json_object_size(b) + 1, sizeof **keys);
    if (!*keys)
        return -1;
    json_object_foreach(a, key, v)
        (*keys)[(*n)++] = key;
    json_object_foreach(b, key, v)
        if (!json_object_get(a, key))
            (*keys)[(*n)++] = key;
    qsort(*keys, *n, sizeof **keys, cmp_key);
    return 0;
}

/* An object's members as "k=v k=v" (sorted keys), or "-" when it has none. */
static void pairs_text(json_t *o, char *out, size_t cap)
{
    const char **keys;
    size_t n, len = 0;
    out[0] = '\0';
    if (key_union(o, NULL, &keys, &n) == 0) {
        for (size_t i = 0; i < n && len + 1 < cap; i++) {
            char val[128];
            value_text(json_object_get(o, keys[i]), val, sizeof val);
            len += (size_t)snprintf(out + len, cap - len, "%s%s=%s", i ? " " : "", keys[i], val);
        }
        kiln_free(keys);
    }
    if (!out[0])
        snprintf(out, cap, "-");
}

/* ---- metrics, shared with `kiln train` (cli.h) ---- */

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* The label of class i: labels[i], or its index (into buf). */
static const char *class_label(const char *const *labels, size_t n_labels, size_t i, char *buf,
                               size_t cap)
{
    if (labels && i < n_labels && labels[i])
        return labels[i];
    snprintf(buf, cap, "%zu", i);
    return buf;
}

static long long cell(json_t *rows, size_t i, size_t j)
{
    return (long long)json_integer_value(json_array_get(json_array_get(rows, i), j));
}

void ka_print_confusion(const void *confusion, const char *const *labels, size_t n_labels,
                        const char *indent)
{
    json_t *rows = (json_t *)confusion;
    size_t k = json_array_size(rows), label_w = 0;
    char buf[32];
    size_t *col_w = k ? kiln_calloc(k, sizeof *col_w) : NULL;
    if (!col_w)
        return;
    /* A column is as wide as its label or its widest count. */
    for (size_t j = 0; j < k; j++) {
        col_w[j] = strlen(class_label(labels, n_labels, j, buf, sizeof buf));
        label_w = max_size(label_w, col_w[j]);
        for (size_t i = 0; i < k; i++)
            col_w[j] = max_size(col_w[j], (size_t)snprintf(buf, sizeof buf, "%lld",
                                                           cell(rows, i, j)));
    }
    printf("%sconfusion (rows: true class, columns: predicted)\n%s  %*s", indent, indent,
           (int)label_w, "");
    for (size_t j = 0; j < k; j++)
        printf("  %*s", (int)col_w[j], class_label(labels, n_labels, j, buf, sizeof buf));
    printf("\n");
    for (size_t i = 0; i < k; i++) {
        printf("%s  %-*s", indent, (int)label_w, class_label(labels, n_labels, i, buf, sizeof buf));
        for (size_t j = 0; j < k; j++)
            printf("  %*lld", (int)col_w[j], cell(rows, i, j));
        printf("\n");
    }
    kiln_free(col_w);
}

void ka_print_metrics(const void *metrics, const char *const *labels, size_t n_labels,
                      const char *indent)
{
    json_t *m = (json_t *)metrics;
    const char **keys;
    size_t n;
    /* A run's metrics name their classes ("labels") when the caller has none. */
    const char *own[256];
    json_t *lab = json_object_get(m, "labels");
    if (!labels && json_is_array(lab) && json_array_size(lab) <= 256) {
        n_labels = 0;
        for (size_t i = 0; i < json_array_size(lab); i++) {
            const char *v = json_string_value(json_array_get(lab, i));
            own[n_labels++] = v ? v : "?";
        }
        labels = own;
    }
    if (key_union(m, NULL, &keys, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(keys[i], "confusion") || !strcmp(keys[i], "labels"))
            continue;
        char val[256];
        value_text(json_object_get(m, keys[i]), val, sizeof val);
        printf("%s%-10s %s\n", indent, keys[i], val);
    }
    kiln_free(keys);
    ka_print_confusion(json_object_get(m, "confusion"), labels, n_labels, indent);
}

/* ---- tables ---- */

/* Adds a row unless an earlier one failed (*failed: out of memory). */
static void add_row(jcli_table_t *t, int *failed, const char *const *cells)
{
    if (!*failed && jcli_table_row(t, cells) < 0)
        *failed = 1;
}

/* Prints t, or says a row failed; frees t; returns the exit status. */
static int print_table(jcli_table_t *t, int failed, const char *cmd)
{
    if (failed)
        fprintf(stderr, "kiln %s: out of memory\n", cmd);
    else
        jcli_table_print(t);
    jcli_table_free(t);
    return failed;
}

/* ---- kiln models ---- */

static void models_usage(FILE *f)
{
    fprintf(f, "usage: kiln models [--json] [--server URL] [--dir D]\n"
               "The registry's models: NAME, LATEST version, number of VERSIONS and ALIASES\n"
               "(alias=version).  A train job whose model passes its gates adds a version.\n"
               JCLI_COMMON_HELP);
}

static int print_models(json_t *models)
{
    static const char *const head[] = {"NAME", "LATEST", "VERSIONS", "ALIASES"};
    jcli_table_t t = {.n_cols = 4};
    int failed = 0;
    size_t i;
    json_t *m;
    add_row(&t, &failed, head);
    json_array_foreach(models, i, m) {
        char latest[32], versions[32], aliases[1024];
        snprintf(latest, sizeof latest, "%lld", jcli_jint(m, "latest"));
        snprintf(versions, sizeof versions, "%lld", jcli_jint(m, "versions"));
        pairs_text(json_object_get(m, "aliases"), aliases, sizeof aliases);
        const char *row[] = {jcli_jstr(m, "name", "?"), latest, versions, aliases};
        add_row(&t, &failed, row);
    }
    return print_table(&t, failed, "models");
}


static int print_models_answer(json_t *o)
{
    return print_models(json_object_get(o, "models"));
}

static int do_models(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "models", .usage = models_usage};
    int r = parse_cmd(&c, argc, argv, NULL, NULL, 0, NULL);
    if (r)
        return r < 0 ? 0 : r;
    return jcli_get_and_print(&c, "/v1/models", print_models_answer);
}

/* ---- kiln model show | promote | rollback ---- */

static void model_usage(FILE *f)
{
    fprintf(f, "usage: kiln model show REF [--json]\n"
               "       kiln model promote NAME VERSION [--alias A] [--json]\n"
               "       kiln model rollback NAME [--alias A] [--json]\n"
               "  show      a version (REF: NAME for the latest, NAME@VERSION or NAME@ALIAS)\n"
               "            and the run that made it: kind, params, seed, dataset and\n"
               "            feature-spec hashes, code version, metrics, gate verdict\n"
               "  promote   point alias A (default production) at VERSION\n"
               "  rollback  point alias A (default production) back at its previous version\n"
               "Each takes --server URL / --dir D (see `kiln model show --help`).\n");
}

static void show_usage(FILE *f)
{
    fprintf(f, "usage: kiln model show REF [--json] [--server URL] [--dir D]\n"
               "REF is NAME (the latest version), NAME@VERSION or NAME@ALIAS.  Prints the\n"
               "version, its aliases and artifact, and the run that made it.\n"
               JCLI_COMMON_HELP);
}

static void promote_usage(FILE *f)
{
    fprintf(f, "usage: kiln model promote NAME VERSION [--alias A] [--json] [--server URL]\n"
               "                          [--dir D]\n"
               "Points alias A (default production) at version VERSION of model NAME; the\n"
               "alias's previous version is kept for `kiln model rollback`.\n"
               "  --alias A     letters, digits, '.', '_' and '-'; not a number\n"
               JCLI_COMMON_HELP);
}

static void rollback_usage(FILE *f)
{
    fprintf(f, "usage: kiln model rollback NAME [--alias A] [--json] [--server URL] [--dir D]\n"
               "Points alias A (default production) back at the version it had before its\n"
               "last promote (exit 1 when it has none).\n"
               JCLI_COMMON_HELP);
}

static int print_model(json_t *o)
{
    json_t *run = json_object_get(o, "run");
    char text[1024];
    printf("model %s version %lld\n", jcli_jstr(o, "name", "?"), jcli_jint(o, "version"));
    pairs_text(json_object_get(o, "aliases"), text, sizeof text);
    printf("  %-10s %s\n", "aliases", text);
    printf("  %-10s %s\n", "artifact", jcli_jstr(o, "artifact_sha256", "-"));
    time_text(jcli_jint(o, "created_ns"), text, sizeof text);
    printf("  %-10s %s\n", "created", text);
    printf("run %lld (job %lld)\n", jcli_jint(run, "id"), jcli_jint(run, "job_id"));
    printf("  %-10s %s\n", "kind", jcli_jstr(run, "kind", "?"));
    pairs_text(json_object_get(run, "params"), text, sizeof text);
    printf("  %-10s %s\n", "params", text);
    printf("  %-10s %lld\n", "seed", jcli_jint(run, "seed"));
    printf("  %-10s %s\n", "dataset", jcli_jstr(run, "dataset_sha256", "-"));
    printf("  %-10s %s\n", "featspec", jcli_jstr(run, "featspec_sha256", "-"));
    printf("  %-10s %s\n", "code", jcli_jstr(run, "code_version", "-"));
    printf("  %-10s %.2f s\n", "duration", json_number_value(json_object_get(run, "duration_s")));
    printf("  %-10s %s\n", "accepted", json_is_true(json_object_get(run, "accepted")) ? "yes" : "no");
    printf("metrics (held-out rows)\n");
    ka_print_metrics(json_object_get(run, "metrics"), NULL, 0, "  ");
    return 0;
}

static int model_show(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "model show", .usage = show_usage};
    static const char *const names[] = {"REF (NAME, NAME@VERSION or NAME@ALIAS)"};
    const char *ref = NULL;
    char path[1024];
    int r = parse_cmd(&c, argc, argv, NULL, names, 1, &ref);
    if (r)
        return r < 0 ? 0 : r;
    if ((r = name_path(&c, path, sizeof path, "/v1/models", ref, "")))
        return r;
    return jcli_get_and_print(&c, path, print_model);
}

/* promote (back = 0) or rollback (back = 1) NAME's alias. */
static int model_move_alias(int argc, char **argv, int back)
{
    jcli_ctx_t c = {.cmd = back ? "model rollback" : "model promote",
                    .usage = back ? rollback_usage : promote_usage};
    static const char *const names[] = {"NAME", "VERSION"};
    const char *pos[2] = {NULL, NULL}, *alias = "production";
    const jcli_opt_t opts[] = {{.name = "--alias", .value = &alias, .nonempty = 1}, {0}};
    unsigned long long version = 0;
    char path[1024];
    int r = parse_cmd(&c, argc, argv, opts, names, back ? 1 : 2, pos);
    if (r)
        return r < 0 ? 0 : r;
    if (strchr(pos[0], '@'))
        return ka_usage_error(c.cmd, c.usage, "NAME is a model's name (no @VERSION or @ALIAS), got",
                              pos[0]);
    if (!back && jcli_parse_id(pos[1], &version) < 0)
        return ka_usage_error(c.cmd, c.usage, "a VERSION is a whole number above 0, got", pos[1]);
    if ((r = name_path(&c, path, sizeof path, "/v1/models", pos[0],
                       back ? "/rollback" : "/promote")))
        return r;
    json_t *body = back ? json_pack("{s:s}", "alias", alias)
                        : json_pack("{s:I, s:s}", "version", (json_int_t)version, "alias", alias);
    json_t *o = NULL;
    char *raw = NULL;
    int rc = body ? 0 : 1;
    if (!body)
        fprintf(stderr, "kiln %s: out of memory\n", c.cmd);
    if (rc == 0)
        rc = jcli_resolve(&c) || call_post_json(&c, path, body, &o, &raw);
    if (rc == 0 && c.json)
        printf("%s\n", raw);
    else if (rc == 0)
        printf("model %s: %s %s version %lld\n", jcli_jstr(o, "model", pos[0]),
               jcli_jstr(o, "alias", alias), back ? "rolled back to" : "->",
               jcli_jint(o, "version"));
    kiln_free(raw);
    json_decref(o);
    json_decref(body);
    return rc;
}

static int do_model(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "kiln model: missing subcommand (show, promote or rollback)\n\n");
        model_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        model_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "show"))
        return model_show(argc - 1, argv + 1);
    if (!strcmp(argv[1], "promote"))
        return model_move_alias(argc - 1, argv + 1, 0);
    if (!strcmp(argv[1], "rollback"))
        return model_move_alias(argc - 1, argv + 1, 1);
    fprintf(stderr, "kiln model: unknown subcommand '%s' (show, promote or rollback)\n\n", argv[1]);
    model_usage(stderr);
    return 2;
}

/* ---- kiln runs [compare A B] ---- */

static void runs_usage(FILE *f)
{
    fprintf(f, "usage: kiln runs [--model NAME] [--limit N] [--json] [--server URL] [--dir D]\n"
               "       kiln runs compare A B [--json] [--server URL] [--dir D]\n"
               "Train runs, newest first: ID, MODEL, KIND, ACCEPTED (passed its gates),\n"
               "ACCURACY/RMSE on the held-out rows, DURATION.  A rejected run is recorded\n"
               "but adds no model version.\n"
               "  --model NAME  only this model's runs\n"
               "  --limit N     at most N runs (default 100)\n"
               "  compare A B   runs A and B side by side: lineage, params that differ,\n"
               "                every metric and its difference (B - A)\n"
               JCLI_COMMON_HELP);
}

static void compare_usage(FILE *f)
{
    fprintf(f, "usage: kiln runs compare A B [--json] [--server URL] [--dir D]\n"
               "Runs A and B side by side: model, kind, seed, gate verdict, whether the\n"
               "dataset, feature spec, artifact and code version are equal, the params that\n"
               "differ, and every metric of each with the difference (B - A).\n"
               JCLI_COMMON_HELP);
}

static const char *check_limit(const char *v)
{
    unsigned long long n;
    return ka_parse_u64(v, &n, 0) < 0 || n > 100000 ? "--limit is a whole number in 1..100000, got"
                                                    : NULL;
}

/* The score a run is judged by: accuracy for a classifier (and an anomaly
 * detector), RMSE for a regressor. */
static void score_text(json_t *metrics, char *out, size_t cap)
{
    json_t *acc = json_object_get(metrics, "accuracy"), *rmse = json_object_get(metrics, "rmse");
    if (json_is_number(acc))
        snprintf(out, cap, "%.4f", json_number_value(acc));
    else if (json_is_number(rmse))
        snprintf(out, cap, "rmse %.4g", json_number_value(rmse));
    else
        snprintf(out, cap, "-");
}

static int print_runs(json_t *o)
{
    static const char *const head[] = {"ID", "MODEL", "KIND", "ACCEPTED", "ACCURACY/RMSE",
                                       "DURATION"};
    jcli_table_t t = {.n_cols = 6};
    int failed = 0;
    size_t i;
    json_t *run;
    add_row(&t, &failed, head);
    json_array_foreach(json_object_get(o, "runs"), i, run) {
        char id[32], score[64], duration[64];
        snprintf(id, sizeof id, "%lld", jcli_jint(run, "id"));
        score_text(json_object_get(run, "metrics"), score, sizeof score);
        snprintf(duration, sizeof duration, "%.2f s",
                 json_number_value(json_object_get(run, "duration_s")));
        const char *row[] = {id, jcli_jstr(run, "model", "?"), jcli_jstr(run, "kind", "?"),
                             json_is_true(json_object_get(run, "accepted")) ? "yes" : "no", score,
                             duration};
        add_row(&t, &failed, row);
    }
    return print_table(&t, failed, "runs");
}

static int field_equal(json_t *a, json_t *b, const char *key)
{
    json_t *x = json_object_get(a, key), *y = json_object_get(b, key);
    return x && y && json_equal(x, y);
}

/* What `runs compare --json` prints (new reference, NULL out of memory):
 * both runs, lineage equalities, the params that differ as [a, b] and
 * every metric as {a, b, equal, difference (b - a, numbers only)}. */
static json_t *compare_json(json_t *a, json_t *b)
{
    json_t *pa = json_object_get(a, "params"), *pb = json_object_get(b, "params");
    json_t *ma = json_object_get(a, "metrics"), *mb = json_object_get(b, "metrics");
    json_t *params = json_object(), *metrics = json_object();
    const char **keys = NULL;
    size_t n = 0;
    json_t *out = json_pack("{s:O, s:O, s:b, s:b, s:b, s:b, s:o, s:o}", "a", a, "b", b,
                            "dataset_equal", field_equal(a, b, "dataset_sha256"),
                            "featspec_equal", field_equal(a, b, "featspec_sha256"),
                            "artifact_equal", field_equal(a, b, "artifact_sha256"),
                            "code_version_equal", field_equal(a, b, "code_version"),
                            "params_differ", params, "metrics", metrics);
    if (!out || key_union(pa, pb, &keys, &n) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_object_get(pa, keys[i]), *y = json_object_get(pb, keys[i]);
        if (!x || !y || !json_equal(x, y))
            json_object_set_new(params, keys[i],
                                json_pack("[O, O]", x ? x : json_null(), y ? y : json_null()));
    }
    kiln_free(keys);
    if (key_union(ma, mb, &keys, &n) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_object_get(ma, keys[i]), *y = json_object_get(mb, keys[i]);
        json_t *m = json_pack("{s:O, s:O, s:b}", "a", x ? x : json_null(), "b",
                              y ? y : json_null(), "equal", x && y && json_equal(x, y));
        if (m && json_is_integer(x) && json_is_integer(y))
            json_object_set_new(m, "difference",
                                json_integer(json_integer_value(y) - json_integer_value(x)));
        else if (m && json_is_number(x) && json_is_number(y))
            json_object_set_new(m, "difference",
                                json_real(json_number_value(y) - json_number_value(x)));
        json_object_set_new(metrics, keys[i], m);
    }
    kiln_free(keys);
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* One row of the comparison table (add_row's *failed rule). */
static void compare_row(jcli_table_t *t, int *failed, const char *label, const char *a,
                        const char *b, const char *note)
{
    const char *row[] = {label, a, b, note};
    add_row(t, failed, row);
}

/* A run field of both runs (a hash shortened), and "equal"/"differs" as
 * cmp's equal_key (NULL: nothing) says. */
static void compare_field(jcli_table_t *t, int *failed, json_t *cmp, const char *label,
                          const char *key, int shorten, const char *equal_key)
{
    char x[256], y[256];
    value_text(json_object_get(json_object_get(cmp, "a"), key), x, sizeof x);
    value_text(json_object_get(json_object_get(cmp, "b"), key), y, sizeof y);
    if (shorten) {
        x[strlen(x) > HASH_SHOWN ? HASH_SHOWN : strlen(x)] = '\0';
        y[strlen(y) > HASH_SHOWN ? HASH_SHOWN : strlen(y)] = '\0';
    }
    const char *note = !equal_key ? ""
                       : json_is_true(json_object_get(cmp, equal_key)) ? "equal" : "differs";
    compare_row(t, failed, label, x, y, note);
}

/* A metric's difference (b - a) as text, or whether it is equal. */
static void difference_text(json_t *m, char *out, size_t cap)
{
    json_t *diff = json_object_get(m, "difference");
    if (json_is_integer(diff))
        snprintf(out, cap, "%+lld", (long long)json_integer_value(diff));
    else if (json_is_real(diff))
        snprintf(out, cap, "%+.6g", json_real_value(diff));
    else
        snprintf(out, cap, "%s", json_is_true(json_object_get(m, "equal")) ? "equal" : "differs");
}

static int print_compare(json_t *cmp)
{
    static const struct {
        const char *label, *key, *equal_key;
        int shorten;
    } fields[] = {
        {"model", "model", NULL, 0},
        {"kind", "kind", NULL, 0},
        {"job", "job_id", NULL, 0},
        {"seed", "seed", NULL, 0},
        {"accepted", "accepted", NULL, 0},
        {"duration_s", "duration_s", NULL, 0},
        {"dataset", "dataset_sha256", "dataset_equal", 1},
        {"featspec", "featspec_sha256", "featspec_equal", 1},
        {"artifact", "artifact_sha256", "artifact_equal", 1},
        {"code", "code_version", "code_version_equal", 0},
    };
    json_t *params = json_object_get(cmp, "params_differ"), *v;
    jcli_table_t t = {.n_cols = 4};
    int failed = 0;
    const char *key;
    char ha[48], hb[48];
    snprintf(ha, sizeof ha, "run %lld", jcli_jint(json_object_get(cmp, "a"), "id"));
    snprintf(hb, sizeof hb, "run %lld", jcli_jint(json_object_get(cmp, "b"), "id"));
    compare_row(&t, &failed, "", ha, hb, "");
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        compare_field(&t, &failed, cmp, fields[i].label, fields[i].key, fields[i].shorten,
                      fields[i].equal_key);
    compare_row(&t, &failed, "params", json_object_size(params) ? "" : "the same", "",
                json_object_size(params) ? "differ" : "");
    json_object_foreach(params, key, v) {
        char x[256], y[256], label[160];
        value_text(json_array_get(v, 0), x, sizeof x);
        value_text(json_array_get(v, 1), y, sizeof y);
        snprintf(label, sizeof label, "  %s", key);
        compare_row(&t, &failed, label, x, y, "");
    }
    compare_row(&t, &failed, "metrics", "", "", "difference");
    json_object_foreach(json_object_get(cmp, "metrics"), key, v) {
        char x[512], y[512], d[64], label[160];
        value_text(json_object_get(v, "a"), x, sizeof x);
        value_text(json_object_get(v, "b"), y, sizeof y);
        difference_text(v, d, sizeof d);
        snprintf(label, sizeof label, "  %s", key);
        compare_row(&t, &failed, label, x, y, d);
    }
    return print_table(&t, failed, "runs compare");
}

static int runs_compare(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "runs compare", .usage = compare_usage};
    static const char *const names[] = {"run ID A", "run ID B"};
    const char *pos[2] = {NULL, NULL};
    unsigned long long id[2];
    int r = parse_cmd(&c, argc, argv, NULL, names, 2, pos);
    if (r)
        return r < 0 ? 0 : r;
    for (int i = 0; i < 2; i++)
        if (jcli_parse_id(pos[i], &id[i]) < 0)
            return ka_usage_error(c.cmd, c.usage, "a run ID is a whole number above 0, got",
                                  pos[i]);
    if (jcli_resolve(&c))
        return 1;
    json_t *run[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/runs/%llu", id[i]);
        if (jcli_call_json(&c, "GET", path, &run[i], NULL)) {
            json_decref(run[0]);
            return 1;
        }
    }
    json_t *cmp = compare_json(run[0], run[1]);
    int rc = 0;
    char *text = NULL;
    if (!cmp || (c.json && !(text = json_dumps(cmp, JSON_COMPACT)))) {
        fprintf(stderr, "kiln runs compare: out of memory\n");
        rc = 1;
    } else if (c.json) {
        printf("%s\n", text);
    } else {
        rc = print_compare(cmp);
    }
    free(text);
    json_decref(cmp);
    json_decref(run[0]);
    json_decref(run[1]);
    return rc;
}

static int do_runs(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "compare"))
        return runs_compare(argc - 1, argv + 1);
    jcli_ctx_t c = {.cmd = "runs", .usage = runs_usage};
    const char *model = NULL, *limit = NULL;
    const jcli_opt_t opts[] = {
        {.name = "--model", .value = &model, .nonempty = 1},
        {.name = "--limit", .value = &limit, .check = check_limit},
        {0},
    };
    char path[1024] = "/v1/runs", esc[768];
    int r = parse_cmd(&c, argc, argv, opts, NULL, 0, NULL);
    if (r)
        return r < 0 ? 0 : r;
    if (model && url_escape(esc, sizeof esc, model, "") < 0)
        return ka_usage_error(c.cmd, c.usage, "--model: a model name is 1 to 255 characters, got",
                              model);
    snprintf(path, sizeof path, "/v1/runs%s%s%s%s%s", model || limit ? "?" : "",
             model ? "model=" : "", model ? esc : "", model && limit ? "&limit=" : limit ? "limit=" : "",
             limit ? limit : "");
    return jcli_get_and_print(&c, path, print_runs);
}

int kiln_cmd_models(int argc, char **argv) { return jcli_with_curl(do_models, argc, argv); }
int kiln_cmd_model(int argc, char **argv) { return jcli_with_curl(do_model, argc, argv); }
int kiln_cmd_runs(int argc, char **argv) { return jcli_with_curl(do_runs, argc, argv); }
