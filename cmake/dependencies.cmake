# Every third-party dependency comes from the system (Debian packages, or a CUDA LibTorch named through
# CMAKE_PREFIX_PATH on GPU hosts). Nothing is downloaded at configure or build time.
find_package(Threads REQUIRED)
find_package(yaml-cpp REQUIRED)
# yaml-cpp 0.8 names its target yaml-cpp::yaml-cpp and deprecates the bare name, the only one 0.7
# (Debian 12) has.
if(NOT TARGET yaml-cpp::yaml-cpp)
  add_library(yaml-cpp::yaml-cpp ALIAS yaml-cpp)
endif()
find_package(nlohmann_json 3.9 REQUIRED)
find_package(pugixml REQUIRED)
find_package(PNG REQUIRED)
find_package(JPEG REQUIRED)

set(DETKIT_TORCH_VERSION "none")
set(DETKIT_TORCH_CUDA "no")
if(DETKIT_WITH_TORCH)
  find_package(Torch REQUIRED)
  set(DETKIT_TORCH_VERSION "${Torch_VERSION}")
  # LibTorch 2.14 and later need C++20 (their headers stop with #error under C++17); their TorchConfig
  # says so on the torch target. Everything is built with the higher of that standard and ours, so the
  # torch-free libraries, whose headers the plugin includes, are compiled the same way.
  get_target_property(_torch_cxx_standard torch CXX_STANDARD)
  if(_torch_cxx_standard AND _torch_cxx_standard GREATER CMAKE_CXX_STANDARD)
    set(CMAKE_CXX_STANDARD ${_torch_cxx_standard})
  endif()
  if(TORCH_CUDA_LIBRARIES OR CAFFE2_USE_CUDA)
    set(_cuda_version "${CUDA_VERSION}")
    if(NOT _cuda_version AND CUDAToolkit_VERSION)
      set(_cuda_version "${CUDAToolkit_VERSION}")
    endif()
    set(DETKIT_TORCH_CUDA "yes (${_cuda_version})")
  endif()
  set(_cudnn "no")
  if(CAFFE2_USE_CUDNN)
    set(_cudnn "yes ${CUDNN_VERSION}")
  endif()
  set(_arch "${TORCH_CUDA_ARCH_LIST}")
  if(NOT _arch)
    set(_arch "-")
  endif()
  message(STATUS "detkit: LibTorch ${Torch_VERSION} from ${Torch_DIR} (C++${CMAKE_CXX_STANDARD})")
  message(STATUS "detkit:   CUDA ${DETKIT_TORCH_CUDA}; cuDNN ${_cudnn}; CUDA arch list ${_arch}")
else()
  message(STATUS "detkit: LibTorch plugin disabled (DETKIT_WITH_TORCH=OFF)")
endif()

# OpenCV's DNN module runs exported ONNX files in `detkit detect/eval --model FILE.onnx` and checks every
# export. Optional: without it (GPU hosts with only a pip LibTorch) export still writes files and says
# they were not run.
set(DETKIT_WITH_OPENCV OFF)
if(DETKIT_WITH_TORCH)
  # Debian's libopencv-dnn-dev ships headers and libraries but no CMake config (that comes with the
  # libopencv-dev meta package and every module), so look for the two libraries directly.
  find_path(DETKIT_OPENCV_INCLUDE_DIR opencv2/dnn.hpp PATH_SUFFIXES opencv4)
  find_library(DETKIT_OPENCV_CORE opencv_core)
  find_library(DETKIT_OPENCV_DNN opencv_dnn)
  if(DETKIT_OPENCV_INCLUDE_DIR AND DETKIT_OPENCV_CORE AND DETKIT_OPENCV_DNN)
    set(DETKIT_WITH_OPENCV ON)
    add_library(detkit_opencv_dnn INTERFACE)
    target_include_directories(detkit_opencv_dnn SYSTEM INTERFACE ${DETKIT_OPENCV_INCLUDE_DIR})
    target_link_libraries(detkit_opencv_dnn INTERFACE ${DETKIT_OPENCV_DNN} ${DETKIT_OPENCV_CORE})
    message(STATUS "detkit: OpenCV DNN from ${DETKIT_OPENCV_DNN} (runs exported ONNX files)")
  else()
    message(STATUS "detkit: OpenCV DNN not found: ONNX files are written but not run (install libopencv-dnn-dev)")
  endif()
endif()

# Distributed training runs on LibTorch's c10d with Gloo. Debian's LibTorch is built with it but its
# ProcessGroupGloo header needs gloo's headers (libgloo-dev); pip LibTorch 2.x ships them. Without them,
# distributed training is refused with an EnvironmentError that says what to install.
set(DETKIT_WITH_GLOO OFF)
if(DETKIT_WITH_TORCH)
  find_path(DETKIT_GLOO_INCLUDE_DIR gloo/context.h HINTS ${TORCH_INCLUDE_DIRS})
  find_path(DETKIT_C10D_INCLUDE_DIR torch/csrc/distributed/c10d/ProcessGroupGloo.hpp HINTS ${TORCH_INCLUDE_DIRS})
  if(DETKIT_GLOO_INCLUDE_DIR AND DETKIT_C10D_INCLUDE_DIR)
    set(DETKIT_WITH_GLOO ON)
    message(STATUS "detkit: c10d with Gloo (distributed training; gloo headers in ${DETKIT_GLOO_INCLUDE_DIR})")
  else()
    message(STATUS "detkit: gloo headers not found: no distributed training (install libgloo-dev)")
  endif()
endif()

# NCCL (GPU to GPU collectives) from a CUDA LibTorch 2.x: its ProcessGroupNCCL header needs nccl.h (pip
# torch keeps it in nvidia/nccl/include beside itself) and must compile here, which is checked first, so a
# LibTorch whose header does not fit leaves detkit on Gloo instead of failing the build.
set(DETKIT_WITH_NCCL OFF)
if(DETKIT_WITH_GLOO AND NOT DETKIT_TORCH_CUDA STREQUAL "no" AND Torch_VERSION VERSION_GREATER_EQUAL 2.0)
  find_program(_python3 python3)
  set(_nccl_hint "")
  if(_python3)
    execute_process(COMMAND ${_python3} -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'include'))"
                    OUTPUT_VARIABLE _nccl_hint OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
  find_path(DETKIT_NCCL_INCLUDE_DIR nccl.h HINTS ${_nccl_hint} ${CUDAToolkit_INCLUDE_DIRS} ${CUDA_INCLUDE_DIRS})
  if(DETKIT_NCCL_INCLUDE_DIR)
    include(CheckCXXSourceCompiles)
    set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS} ${DETKIT_NCCL_INCLUDE_DIR} ${CUDAToolkit_INCLUDE_DIRS} ${CUDA_INCLUDE_DIRS})
    set(CMAKE_REQUIRED_DEFINITIONS -DUSE_C10D_NCCL)
    set(CMAKE_REQUIRED_FLAGS "${TORCH_CXX_FLAGS} -std=c++${CMAKE_CXX_STANDARD}")
    set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
    check_cxx_source_compiles([[
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
c10::intrusive_ptr<c10d::Backend> make(const c10::intrusive_ptr<c10d::Store>& store) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = std::chrono::milliseconds(1000);
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, 0, 1, options);
}
int main() { return 0; }
]] DETKIT_NCCL_HEADER_COMPILES)
    unset(CMAKE_REQUIRED_INCLUDES)
    unset(CMAKE_REQUIRED_DEFINITIONS)
    unset(CMAKE_REQUIRED_FLAGS)
    unset(CMAKE_TRY_COMPILE_TARGET_TYPE)
    if(DETKIT_NCCL_HEADER_COMPILES)
      set(DETKIT_WITH_NCCL ON)
      message(STATUS "detkit: c10d with NCCL (nccl.h in ${DETKIT_NCCL_INCLUDE_DIR})")
    else()
      message(STATUS "detkit: ProcessGroupNCCL.hpp does not compile here (CMakeFiles/CMakeError.log): GPUs use Gloo")
    endif()
  else()
    message(STATUS "detkit: nccl.h not found: GPUs use Gloo for distributed training")
  endif()
endif()
