// A stand-in for libcuda.so.1: cuDriverGetVersion answers the integer in DETKIT_FAKE_CUDA_DRIVER
// (12040 = CUDA 12.4), or CUDA_ERROR_NOT_INITIALIZED (3) when the variable is unset.
#include <cstdlib>

extern "C" int cuDriverGetVersion(int* version) {
  const char* env = std::getenv("DETKIT_FAKE_CUDA_DRIVER");
  if (!env) return 3;
  *version = std::atoi(env);
  return 0;
}
