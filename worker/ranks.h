/* ranks.h - one rank of a data-parallel train job, run under mpirun:
 *
 *   mpirun -np R kiln-worker --train-ranks SPEC.json [--output OUT.kmodel]
 *
 * Each rank joins the MPI world (cluster/collective.h), validates SPEC.json
 * through the train job type and runs jobs/train_ranks.h with the MPI
 * reduce; rank 0 writes the model file.  R must equal the spec's
 * resources.ranks. */
#ifndef KW_RANKS_H
#define KW_RANKS_H

/* argc/argv: the process's own (MPI may take its arguments out of them);
 * spec_path and output (NULL: the spec's "output") point into argv.
 * Returns the exit status: 0, or 1 with "kiln-worker: rank R: error: ..."
 * on stderr.  A rank that fails while others may still be in a collective
 * ends the whole run (MPI_Abort, exit status 1). */
int kw_train_ranks_main(int *argc, char ***argv, const char *spec_path, const char *output);

#endif
