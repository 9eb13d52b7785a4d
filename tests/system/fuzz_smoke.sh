#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz) in smoke mode: the job-spec parser fuzzed
# for a bounded time, the sensor-file target replaying its seed corpus;
# any crash, sanitizer report or leak fails the test.
set -euo pipefail
cd "$KILN_ROOT"
FUZZ_MODE=smoke FUZZ_SECONDS=${FUZZ_SECONDS:-15} bash tests/fuzz/run.sh
