/* gang.h - a task of a gang that is one MPI program (scheduler/sched_mpi.c):
 * run inside `kiln-worker --run-task FILE` when the task has "gang_role".
 *
 *  launcher  (task 0) runs Open MPI's mpirun over the gang's workers, each
 *            rank `kiln-worker --train-ranks`, with `kiln-worker --mpi-agent`
 *            as mpirun's remote launch agent, and ends as mpirun ends;
 *  holder    (every other task) holds its slot until kilnd hands its worker
 *            mpirun's daemon command (the worker writes it to FILE.exec);
 *            then runs it and ends as the daemon ends.
 * SIGTERM (a cancel) is passed on to mpirun or the daemon's process group. */
#ifndef KW_GANG_H
#define KW_GANG_H

#include <jansson.h>

#include "../core/kiln_err.h"

/* The command file of holder `task_path`, which the worker writes. */
#define KW_GANG_EXEC_SUFFIX ".exec"

int kw_gang_run(const json_t *task, const char *task_path, kiln_err_t *err);

/* `kiln-worker --mpi-agent HOST WORD...`: what mpirun calls instead of ssh.
 * Sends the daemon's command line (the words, joined) for worker HOST to
 * kilnd, with the launching task's lease from the environment
 * (KILN_AGENT_ENDPOINT, KILN_AGENT_JOB, KILN_AGENT_LEASE); exits 0 once
 * kilnd has passed it on. */
int kw_mpi_agent_main(int argc, char **argv);

#endif
