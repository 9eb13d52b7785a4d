# kiln - top-level build.  `make` builds the library, the CLI and the tests;
# `make test`, `make demo` and `make bench` first install what is missing
# (scripts/deps.sh: apt-get + a pinned virtualenv in .venv).
#
#   make SAN=1 test      AddressSanitizer + UBSan build of everything
#   make CUDA=0          skip CUDA even when nvcc is there

CC      ?= cc
PKGS    := hdf5 jansson matio sqlite3 libzmq libuv libmicrohttpd libcurl ompi-c libarchive \
           libsodium libmosquitto gnutls libcrypto
CPPFLAGS_PKG := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS_PKG     := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# -march: the build machine's own vector units (the product is built where it runs).
ARCH    ?= -march=native
OPT     ?= -O3
CFLAGS  := -std=c11 -Wall -Wextra -Werror -g $(OPT) $(ARCH) -fno-math-errno
CPPFLAGS:= -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I. $(CPPFLAGS_PKG)
LDLIBS  := $(LIBS_PKG) -lm -lpthread
B       := build
BIN     := bin
KILN    := $(BIN)/kiln

ifeq ($(SAN),1)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  B       := build/san
  BIN     := build/san/bin
  KILN    := $(BIN)/kiln
endif

NVCC    ?= $(shell command -v nvcc 2>/dev/null)
CUDA    ?= $(if $(NVCC),1,0)

# Every module goes into libkiln.a, the daemons' and the CLI's too (so unit
# tests reach them); only the three files holding main() stay out.
MAIN_SRC := api/kiln.c scheduler/main.c worker/main.c edge/main.c
LIB_SRC := $(filter-out $(MAIN_SRC),$(wildcard core/*.c kernels/cpu/*.c storage/*.c \
             cluster/*.c jobs/*.c scheduler/*.c worker/*.c api/*.c edge/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
PROGS   := $(KILN) $(BIN)/kilnd $(BIN)/kiln-worker $(BIN)/kiln-edge
TEST_SUPPORT := $(B)/tests/unit/oracle.o
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(B)/tests/%)
# The dashboard's files (scheduler/ui/) as C arrays, generated into the build
# tree and served by scheduler/routes_ui.c.
UI_SRC  := $(sort $(wildcard scheduler/ui/*))
LIB_OBJ += $(B)/gen/ui_assets.o
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)

# The jobs' GPU paths (jobs/featgpu.c, ...) call kernels_cuda.h: with nvcc,
# libkiln_cuda.a and the CUDA runtime (found at run time through an rpath);
# without, a stub whose every call says "no GPU" (kernels/cuda_stub/).
ifeq ($(CUDA),1)
  CUDA_LIB64 ?= $(abspath $(dir $(NVCC))../lib64)
  GPU_LIB    := $(B)/libkiln_cuda.a
  # libkiln.a again after the CUDA objects: they call back into it (km_*_load).
  GPU_LDLIBS := $(B)/libkiln.a -L$(CUDA_LIB64) -Wl,-rpath,$(CUDA_LIB64) -lcublas -lcufft \
                -lcudart -lstdc++
else
  GPU_LIB    :=
  GPU_LDLIBS :=
  LIB_OBJ    += $(B)/kernels/cuda_stub/kc_stub.o
endif

CU_SRC  := $(wildcard kernels/cuda/*.cu)
# Host-side drivers of the CUDA kernels written in plain C (public API only).
CU_CSRC := $(wildcard kernels/cuda/*.c)
CU_OBJ  := $(CU_SRC:%.cu=$(B)/%.o) $(CU_CSRC:%.c=$(B)/%.o)
# H100 machine code (sm_90) plus compute_90 PTX, which newer GPUs JIT.
CUDA_GENCODE ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVFLAGS := -O3 -std=c++17 $(CUDA_GENCODE) -Werror all-warnings -Xcompiler -Wall,-Wextra -I.
# NCCL beside the CUDA headers and libraries (kernels/cuda/nccl.cu); without
# both the module builds as stubs returning KILN_EUNSUPPORTED.
CUDA_INC := $(if $(NVCC),$(dir $(realpath $(NVCC)))../include)
NCCL_INC ?= $(firstword $(wildcard $(CUDA_INC)/nccl.h /usr/include/nccl.h /usr/local/include/nccl.h))
NCCL_SO  ?= $(firstword $(wildcard $(CUDA_LIB64)/libnccl.so /usr/lib/x86_64-linux-gnu/libnccl.so))
ifneq ($(and $(filter 1,$(CUDA)),$(NCCL_INC),$(NCCL_SO)),)
  NVFLAGS    += -I$(dir $(NCCL_INC))
  GPU_LDLIBS += -L$(dir $(NCCL_SO)) -lnccl
else
  NVFLAGS    += -DKC_NO_NCCL
endif

.PHONY: all deps test demo bench fuzz clean cuda
.SECONDARY:
all: $(PROGS) $(TEST_BIN) $(BENCH_BIN) $(B)/tests/edge-sign $(if $(filter 1,$(CUDA)),cuda)

deps:
	@scripts/deps.sh

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/gen/ui_assets.c: $(UI_SRC) scripts/embed_ui.sh
	@mkdir -p $(dir $@)
	sh scripts/embed_ui.sh $(UI_SRC) >$@.tmp.gen && mv $@.tmp.gen $@
$(B)/gen/ui_assets.o: $(B)/gen/ui_assets.c scheduler/routes_ui.h
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Rebuilt when CUDA=0/1 changes (the stub is in it only without CUDA): the
# file is rewritten, and so newer, only when the mode differs from the last.
.PHONY: FORCE
$(B)/.cuda-mode: FORCE
	@mkdir -p $(B) && echo $(CUDA) | cmp -s - $@ || echo $(CUDA) > $@

$(B)/libkiln.a: $(LIB_OBJ) $(B)/.cuda-mode
	@rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(KILN): $(B)/api/kiln.o $(B)/libkiln.a $(GPU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(CFLAGS) -o $@ $< $(B)/libkiln.a $(GPU_LIB) $(LDLIBS) $(GPU_LDLIBS)

$(BIN)/kilnd: $(B)/scheduler/main.o $(B)/libkiln.a $(GPU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(CFLAGS) -o $@ $< $(B)/libkiln.a $(GPU_LIB) $(LDLIBS) $(GPU_LDLIBS)

$(BIN)/kiln-worker: $(B)/worker/main.o $(B)/libkiln.a $(GPU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(CFLAGS) -o $@ $< $(B)/libkiln.a $(GPU_LIB) $(LDLIBS) $(GPU_LDLIBS)

$(BIN)/kiln-edge: $(B)/edge/main.o $(B)/libkiln.a $(GPU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(CFLAGS) -o $@ $< $(B)/libkiln.a $(GPU_LIB) $(LDLIBS) $(GPU_LDLIBS)

$(B)/tests/%: tests/unit/%.c $(TEST_SUPPORT) $(B)/libkiln.a $(GPU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT) $(B)/libkiln.a $(GPU_LIB) $(LDLIBS) $(GPU_LDLIBS) -lcmocka

# The device side of the fleet signature for tests/system/fleet_api.sh.
$(B)/tests/edge-sign: tests/system/edge_sign.c $(B)/libkiln.a $(GPU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libkiln.a $(GPU_LIB) $(LDLIBS) $(GPU_LDLIBS)

$(B)/bench/%: bench/%.c $(B)/libkiln.a $(GPU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libkiln.a $(GPU_LIB) $(LDLIBS) $(GPU_LDLIBS) -lfftw3f

# sched_bench is one program in several files: bench/sched_bench.c (main, the
# measurements) and bench/sched_bench/ (its processes and cluster), a folder
# BENCH_SRC's glob does not enter.
SCHED_BENCH_SRC := $(wildcard bench/sched_bench/*.c)
$(B)/bench/sched_bench: bench/sched_bench.c $(SCHED_BENCH_SRC) $(wildcard bench/sched_bench/*.h) \
                        $(B)/libkiln.a $(GPU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ bench/sched_bench.c $(SCHED_BENCH_SRC) $(B)/libkiln.a $(GPU_LIB) $(LDLIBS) $(GPU_LDLIBS) -lfftw3f

# CUDA twins: compiled (warning-free) whenever nvcc exists, even without a GPU,
# into libkiln_cuda.a (link it with -lcudart -lcublas, and -lnccl when NCCL
# was found).
cuda: $(B)/libkiln_cuda.a
$(B)/libkiln_cuda.a: $(CU_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(B)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@
-include $(CU_OBJ:.o=.d)

# GPU parity tests and benchmark: tests/gpu/run.sh builds them from source
# with nvcc and gcc alone (the GPU machine has no HDF5 etc.) into GPU_OUT.
# gpu-data extracts real CWRU windows into $(B)/gpu-data here, where the
# full build is; carry that folder to the GPU machine.
GPU_OUT  ?= out-gpu
CWRU_DIR ?= $(or $(KILN_DATA),../shared/data)/cwru
.PHONY: test-gpu bench-gpu gpu-data
test-gpu:
	@B=$(B) bash tests/gpu/run.sh --no-bench $(GPU_OUT)
# The kernels' figures; then, where kiln itself was built with CUDA here (or
# a bundle from tests/gpu/bundle.sh was carried), the HDF5 file-to-file
# featurize GPU vs CPU and the job paths (tests/gpu/e2e.sh).
bench-gpu:
	@B=$(B) bash tests/gpu/run.sh --bench-only $(GPU_OUT)
	@if [ -f build/gpu-e2e.txz ] || [ -d build/gpu-e2e ]; then bash tests/gpu/e2e.sh $(or $(GPU_OUT),out-gpu)/e2e; \
	 else echo "bench-gpu: HDF5 end to end skipped (no build/gpu-e2e: bash tests/gpu/bundle.sh)"; fi
gpu-data: $(B)/gpu/extract_cwru
	$(B)/gpu/extract_cwru $(CWRU_DIR) $(B)/gpu-data
$(B)/gpu/extract_cwru: tests/gpu/extract_cwru.c $(B)/libkiln.a $(GPU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libkiln.a $(GPU_LIB) $(LDLIBS) $(GPU_LDLIBS)

test: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) KILN_BIN=$(abspath $(KILN)) tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory $(PROGS)
	@scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory OPT=-O3 $(PROGS) $(BENCH_BIN)
	@B=$(B) bench/run.sh

# Both fuzz targets with mutation, FUZZ_SECONDS each (tests/fuzz/run.sh).
fuzz: deps
	@$(MAKE) --no-print-directory $(PROGS)
	@tests/fuzz/run.sh

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(MAIN_SRC:%.c=$(B)/%.d)
