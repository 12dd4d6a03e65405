# The two README commands are `make demo` and `make test`; both bootstrap and build first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all bootstrap configure build test test-all demo gpu-check check-torch-api clean

all: build

bootstrap:
	@scripts/bootstrap

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_ARGS)

configure: bootstrap
	@$(MAKE) --no-print-directory $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Every tier except `gpu` (which needs a device: see scripts/gpu-check).
test: build
	ctest --test-dir $(BUILD_DIR) -LE gpu -j $(JOBS) --output-on-failure

demo: build
	scripts/demo $(BUILD_DIR)

gpu-check:
	scripts/gpu-check

# The LibTorch code compiled (syntax only) against Debian sid's newest LibTorch and CUDA LibTorch headers:
# the API of the 2.x releases GPU hosts use, and C++20 from 2.14 (CI runs it after the tests).
check-torch-api: build
	scripts/check-torch-api --build $(BUILD_DIR) --jobs $(JOBS)

clean:
	rm -rf $(BUILD_DIR)
