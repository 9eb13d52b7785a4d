/* cli_util.c - helpers shared by the `kiln` subcommands (cmd_gen.c,
 * cmd_ingest.c): usage errors, number options, the summary of what was
 * written. */
#include "cli_util.h"

#include <errno.h>
#include <stdlib.h>

int ka_usage_error(const char *cmd, void (*usage)(FILE *), const char *msg, const char *arg)
{
    fprintf(stderr, "kiln %s: %s%s%s\n\n", cmd, msg, arg ? " " : "", arg ? arg : "");
    usage(stderr);
    return 2;
}

int ka_parse_u64(const char *s, unsigned long long *out, int allow_zero)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-' || (!allow_zero && v == 0))
        return -1;
    *out = v;
    return 0;
}

int ka_parse_size(const char *s, size_t *out)
{
    unsigned long long v;
    if (ka_parse_u64(s, &v, 0) < 0)
        return -1;
    *out = (size_t)v;
    return 0;
}

void ka_print_summary(const char *out, const jb_ingest_summary_t *s)
{
    printf("wrote %s\n", out);
    printf("  windows     %zu\n", s->n_windows);
    printf("  window_len  %zu\n", s->window_len);
    printf("  rate_hz     %g\n", s->sample_rate_hz);
    printf("  channels    %zu:", s->n_channels);
    for (size_t c = 0; c < s->n_channels; c++)
        printf("%s%s", c ? ", " : " ", s->channels[c]);
    printf("\n");
    if (s->n_labels) {
        printf("  classes    ");
        for (size_t l = 0; l < s->n_labels; l++)
            printf("%s %s %zu", l ? "," : "", s->label_names[l], s->label_counts[l]);
        if (s->n_unlabelled)
            printf(", unlabelled %zu", s->n_unlabelled);
        printf("\n");
    }
    if (s->n_dropped_samples)
        printf("  dropped     %zu trailing samples short of a window\n", s->n_dropped_samples);
    printf("  sha256      %s\n", s->hash);
}

const char *ka_check_gpu(const char *value)
{
    unsigned long long d;
    return ka_parse_u64(value, &d, 1) < 0 || d > 1023 ? "--gpu: not a device index:" : NULL;
}

int ka_gpu_device(const char *value)
{
    unsigned long long d = 0;
    return value && ka_parse_u64(value, &d, 1) == 0 ? (int)d : -1;
}
