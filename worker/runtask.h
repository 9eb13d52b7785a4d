/* runtask.h - the child side of a task: `kiln-worker --run-task FILE` reads
 * the task message's body from FILE, limits its address space to
 * spec.resources.memory_mb when given, validates the spec and runs the
 * type's run_task into `output` (docs/cluster.md, "Running a task"). */
#ifndef KW_RUNTASK_H
#define KW_RUNTASK_H

#include "../core/kiln_err.h"

/* Runs the task described by the JSON file at path.  0, or a negative
 * code with err naming the file and field (KILN_ENOMEM when memory ran out,
 * whether from the limit or not). */
int kw_run_task_file(const char *path, kiln_err_t *err);

/* kw_run_task_file as a process: returns the exit code (KW_EXIT_OK,
 * KW_EXIT_NOMEM, KW_EXIT_ERROR), having written
 * "kiln-worker: error: <message>" as the last line of stderr on failure. */
int kw_run_task_main(const char *path);

#endif
