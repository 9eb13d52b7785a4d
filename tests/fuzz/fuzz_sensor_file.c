/* fuzz_sensor_file.c - libFuzzer target: any bytes as a sensor dataset file.
 * Opening, reading every window and recomputing the hash must end in 0 or a
 * clear error, never a crash (HDF5's own parser is in the loop too). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "storage/sensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/kiln-fuzz-%ld.h5", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);

    st_sensor_t *ds = NULL;
    kiln_err_t err;
    if (st_sensor_open(path, &ds, &err) == 0) {
        const st_sensor_meta_t *m = st_sensor_meta(ds);
        /* bounded: fuzzed shapes may claim huge sizes */
        size_t n = m->n_windows < 64 ? m->n_windows : 64;
        if (m->window_len <= (1u << 16)) {
            float *buf = malloc(n * m->window_len * sizeof(float) + 1);
            for (size_t c = 0; buf && c < m->n_channels; c++)
                (void)st_sensor_read(ds, c, 0, n, buf, &err);
            free(buf);
        }
        char hash[65];
        (void)st_sensor_hash(ds, hash, &err);
        st_sensor_close(&ds);
    }
    unlink(path);
    return 0;
}
