# attnlab — top-level wrapper around CMake. `make run` and `make test` do all set-up on a fresh Debian 12.
BUILD   ?= build
JOBS    ?= $(shell nproc)
CUDA    ?= AUTO
CMAKE_FLAGS ?=

.PHONY: all deps configure build run test bench clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DATTNLAB_CUDA=$(CUDA) $(CMAKE_FLAGS) > $(BUILD).configure.log 2>&1 \
	  || (cat $(BUILD).configure.log; exit 1)
	@sed -n '/attnlab configuration/,/^-- ---/p' $(BUILD).configure.log

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# End-to-end demo on the embedded S&P 500 dataset. Builds only the CLI (the `attnlab` target and the
# libraries it links), not the test suite, so a newcomer's first command finishes in the least time.
run: configure
	@cmake --build $(BUILD) -j $(JOBS) --target attnlab
	@$(BUILD)/tools/attnlab demo

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	@$(BUILD)/tools/attnlab bench all

clean:
	rm -rf $(BUILD) $(BUILD).configure.log
