/* cmd_ingest.c - `kiln ingest cwru|cmapss|csv`: parses options and calls the
 * ingest job (jobs/ingest.h); prints what was written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"
#include "../jobs/ingest.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage:\n"
        "  kiln ingest cwru [--rate HZ] [--window-len N] [--hop N] [--channels DE,FE]\n"
        "                   [--normal-rate HZ] [--compress L] -o OUT.h5 FILE.mat...\n"
        "  kiln ingest cmapss (--train TRAIN.txt | --test TEST.txt --rul RUL.txt)\n"
        "                   [--compress L] -o OUT.h5\n"
        "  kiln ingest csv --window-len N [--rate HZ] [--hop N] [--channels A,B]\n"
        "                   [--compress L] -o OUT.h5 FILE.csv\n"
        "\n"
        "cwru:   CWRU bearing .mat files; class from the file name, resampled to one rate\n"
        "        (default: the lowest input rate) with an anti-aliasing filter, windows of\n"
        "        --window-len samples (default 2048) every --hop samples (default: window).\n"
        "        Files without a 12k/48k prefix (the normal baseline) are read at\n"
        "        --normal-rate (default 48000 Hz).\n"
        "cmapss: NASA C-MAPSS text; one window per cycle, target = remaining useful life.\n"
        "csv:    header timestamp,asset,<channels>[,label]; timestamp in seconds or ISO 8601\n"
        "        UTC; rate inferred from the first asset's median step unless --rate.\n");
}

static int bad_usage(const char *msg, const char *arg)
{
    return ka_usage_error("ingest", usage, msg, arg);
}

static int parse_pos_double(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v > 0) || v > 1e12)
        return -1;
    *out = v;
    return 0;
}

int kiln_cmd_ingest(int argc, char **argv)
{
    if (argc < 2)
        return bad_usage("missing the input kind (cwru, cmapss or csv)", NULL);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    const char *kind = argv[1];
    if (strcmp(kind, "cwru") && strcmp(kind, "cmapss") && strcmp(kind, "csv"))
        return bad_usage("unknown input kind", kind);

    jb_ingest_opts_t o = {0};
    const char *out = NULL, *train = NULL, *test = NULL, *rul = NULL;
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    size_t n_inputs = 0;
    int rc = 2;
    if (!inputs) {
        fprintf(stderr, "kiln ingest: out of memory\n");
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            rc = 0;
            goto done;
        }
        if (a[0] != '-' || !a[1]) {
            inputs[n_inputs++] = a;
            continue;
        }
        if (i + 1 >= argc) {
            bad_usage("option needs a value:", a);
            goto done;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            out = v;
        else if (!strcmp(a, "--rate"))
            bad = parse_pos_double(v, &o.target_rate_hz);
        else if (!strcmp(a, "--normal-rate"))
            bad = parse_pos_double(v, &o.cwru_unprefixed_rate_hz);
        else if (!strcmp(a, "--window-len"))
            bad = ka_parse_size(v, &o.window_len);
        else if (!strcmp(a, "--hop"))
            bad = ka_parse_size(v, &o.hop);
        else if (!strcmp(a, "--channels"))
            o.channels = v;
        else if (!strcmp(a, "--compress")) {
            char *end;
            long l = strtol(v, &end, 10);
            bad = !*v || *end || l < 0 || l > 9;
            o.compress = (int)l;
        } else if (!strcmp(a, "--train"))
            train = v;
        else if (!strcmp(a, "--test"))
            test = v;
        else if (!strcmp(a, "--rul"))
            rul = v;
        else {
            bad_usage("unknown option", a);
            goto done;
        }
        if (bad) {
            fprintf(stderr, "kiln ingest: bad value '%s' for %s\n", v, a);
            goto done;
        }
    }
    if (!out) {
        bad_usage("missing -o OUT.h5", NULL);
        goto done;
    }

    kiln_err_t err = {0};
    jb_ingest_summary_t *sum = calloc(1, sizeof *sum);
    if (!sum) {
        fprintf(stderr, "kiln ingest: out of memory\n");
        rc = 1;
        goto done;
    }
    int jrc;
    if (!strcmp(kind, "cwru")) {
        if (n_inputs == 0) {
            bad_usage("cwru needs at least one .mat file", NULL);
            free(sum);
            goto done;
        }
        jrc = jb_ingest_cwru(out, inputs, n_inputs, &o, sum, &err);
    } else if (!strcmp(kind, "cmapss")) {
        if (n_inputs || (!train == !test) || (test && !rul) || (train && rul)) {
            bad_usage("cmapss takes --train TRAIN.txt, or --test TEST.txt with --rul RUL.txt", NULL);
            free(sum);
            goto done;
        }
        jrc = jb_ingest_cmapss(out, train ? train : test, rul, &o, sum, &err);
    } else {
        if (n_inputs != 1 || o.window_len == 0) {
            bad_usage("csv takes --window-len N and exactly one FILE.csv", NULL);
            free(sum);
            goto done;
        }
        jrc = jb_ingest_csv(out, inputs[0], &o, sum, &err);
    }
    if (jrc < 0) {
        fprintf(stderr, "kiln ingest: %s\n", err.msg[0] ? err.msg : kiln_strerror(jrc));
        rc = 1;
    } else {
        ka_print_summary(out, sum);
        rc = 0;
    }
    free(sum);
done:
    free(inputs);
    return rc;
}
