/* cli_util.h - what the `kiln` subcommands share: usage errors, whole-number
 * options and the summary of a written sensor dataset. */
#ifndef KILN_API_CLI_UTIL_H
#define KILN_API_CLI_UTIL_H

#include <stddef.h>
#include <stdio.h>

#include "../jobs/ingest.h"

/* Prints "kiln CMD: MSG[ ARG]", a blank line and usage(stderr); returns 2,
 * the exit status for a usage error. */
int ka_usage_error(const char *cmd, void (*usage)(FILE *), const char *msg, const char *arg);

/* A decimal whole number: no sign, no trailing characters, no overflow,
 * and not 0 unless allow_zero.  0, or -1 with *out untouched. */
int ka_parse_u64(const char *s, unsigned long long *out, int allow_zero);
/* ka_parse_u64 without zero, into a size_t. */
int ka_parse_size(const char *s, size_t *out);

/* --gpu DEVICE: a CUDA device index (jcli_opt_t.check: NULL when good). */
const char *ka_check_gpu(const char *value);
/* The device of a checked --gpu value, -1 when the option was not given. */
int ka_gpu_device(const char *value);

/* "wrote OUT" and the windows, window length, rate, channels, classes (if
 * labelled), dropped samples (if any) and content hash of s. */
void ka_print_summary(const char *out, const jb_ingest_summary_t *s);

#endif
