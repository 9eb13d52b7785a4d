#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz), a bounded run each from a seed corpus:
# any crash, sanitizer report or leak fails the test.
set -euo pipefail
cd "$KILN_ROOT"
FUZZ_SECONDS=${FUZZ_SECONDS:-15} bash tests/fuzz/run.sh
