#!/usr/bin/env bash
# deps.sh - installs what kiln needs and is missing: Debian packages with
# apt-get (as root), then the pinned Python virtualenv .venv built from
# Debian's /usr/bin/python3.  Idempotent and quiet when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# fftw: the benchmark's peer only (the product has its own FFT); time and
# util-linux-extra (fincore): CPU seconds and page-cache residency in make bench;
# clang with its libFuzzer runtime: the fuzz targets in tests/fuzz; slurm-wlm
# and munge: the local Slurm that make bench runs as the scheduler's peer; openmpi:
# the collectives of data-parallel training (cluster/collective.c, mpirun);
# prometheus: the real scraper (and promtool) of tests/system/metrics_prometheus.sh,
# started by hand there, never as the systemd service; chromium: the headless
# browser of tests/system/dashboard_browser.sh; libarchive, libsodium,
# libmosquitto + mosquitto (started by hand by the tests), GnuTLS and its
# certtool: model bundles, their signatures and the edge agents (issue 9);
# OpenSSL's libcrypto for the bundle hash and AEAD (storage/bundle_aead.c).
PKGS="build-essential pkg-config libhdf5-dev hdf5-tools libjansson-dev libmatio-dev
      libcmocka-dev libfftw3-dev libsqlite3-dev libzmq3-dev libuv1-dev libmicrohttpd-dev
      libcurl4-openssl-dev slurm-wlm munge python3 python3-venv time util-linux-extra
      clang libclang-rt-14-dev openmpi-bin libopenmpi-dev prometheus chromium
      libarchive-dev libsodium-dev libmosquitto-dev mosquitto gnutls-bin libgnutls28-dev
      libssl-dev"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    if [ "$(id -u)" != 0 ]; then
        echo "deps: need root to apt-get install$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The venv is rebuilt when requirements.txt changes.
stamp=.venv/.kiln-requirements
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt "$stamp"; then
    echo "deps: building .venv from requirements.txt"
    rm -rf .venv
    /usr/bin/python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
    cp requirements.txt "$stamp"
fi
