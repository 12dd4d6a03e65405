// A stand-in for libcudnn.so.N: cudnnGetVersion returns FAKE_CUDNN_VERSION, fixed at compile time
// (8902 = 8.9.2 in cuDNN 8's encoding, 90100 = 9.1.0 in cuDNN 9's). The tests copy it into fake system
// trees under the soname a real cuDNN has.
#include <cstddef>

extern "C" std::size_t cudnnGetVersion() { return FAKE_CUDNN_VERSION; }
