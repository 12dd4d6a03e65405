# Stub NVIDIA libraries for the doctor's tests (see tests/diag/stubs/): they export the entry points
# detkit opens with dlopen and report versions chosen by the tests, so every doctor rule runs on a
# machine without a GPU or driver. Included from tests/unit/CMakeLists.txt.
set(DETKIT_STUB_DIR ${CMAKE_BINARY_DIR}/tests/diag)
add_library(detkit_fake_nvml SHARED ${CMAKE_SOURCE_DIR}/tests/diag/stubs/fake_nvml.cpp)
add_library(detkit_fake_cuda SHARED ${CMAKE_SOURCE_DIR}/tests/diag/stubs/fake_cuda.cpp)
add_library(detkit_fake_cudnn8 SHARED ${CMAKE_SOURCE_DIR}/tests/diag/stubs/fake_cudnn.cpp)
target_compile_definitions(detkit_fake_cudnn8 PRIVATE FAKE_CUDNN_VERSION=8902)
add_library(detkit_fake_cudnn9 SHARED ${CMAKE_SOURCE_DIR}/tests/diag/stubs/fake_cudnn.cpp)
target_compile_definitions(detkit_fake_cudnn9 PRIVATE FAKE_CUDNN_VERSION=90100)
set_target_properties(detkit_fake_nvml detkit_fake_cuda detkit_fake_cudnn8 detkit_fake_cudnn9
                      PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${DETKIT_STUB_DIR})

# Compile definitions giving a test target the stubs' paths and the test data folder.
function(detkit_use_diag_stubs target)
  add_dependencies(${target} detkit_fake_nvml detkit_fake_cuda detkit_fake_cudnn8 detkit_fake_cudnn9)
  target_compile_definitions(${target} PRIVATE
    DETKIT_FAKE_NVML_LIB="$<TARGET_FILE:detkit_fake_nvml>"
    DETKIT_FAKE_CUDA_LIB="$<TARGET_FILE:detkit_fake_cuda>"
    DETKIT_FAKE_CUDNN8_LIB="$<TARGET_FILE:detkit_fake_cudnn8>"
    DETKIT_FAKE_CUDNN9_LIB="$<TARGET_FILE:detkit_fake_cudnn9>"
    DETKIT_DIAG_TEST_DATA="${CMAKE_SOURCE_DIR}/tests/diag")
endfunction()
