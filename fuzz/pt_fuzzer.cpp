// Fuzz target for the PyTorch checkpoint reader: any bytes give a checkpoint (whose weights are then found
// and every tensor gathered) or a CheckpointError; the same bytes as a bare pickle give a document or a
// PickleError. Anything else escaping (a PickleError from the checkpoint reader, an InternalError, a
// std::bad_alloc), a crash, a sanitizer report or a leak is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "models/pt_file.h"
#include "models/pt_pickle.h"

namespace ptfile = detkit::models::ptfile;
namespace pickle = detkit::models::pickle;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  // The pickle reader alone: parse_checkpoint only reaches it through a zip's data.pkl or a legacy file.
  try {
    const pickle::Document doc = pickle::parse(bytes);
    (void)pickle::describe(doc.root());
  } catch (const pickle::PickleError&) {
  }

  // The whole reader, as `detkit import` runs it.
  try {
    const ptfile::Checkpoint checkpoint = ptfile::parse_checkpoint(std::string(bytes), "fuzz.pt");
    const ptfile::FoundWeights found = ptfile::find_weights(checkpoint);
    for (const ptfile::TensorRef& tensor : found.tensors) {
      if (tensor.numel() > (int64_t{1} << 20)) continue;  // a legitimately huge tensor: not worth the time
      const std::string gathered = tensor.contiguous_bytes();
      if (gathered.size() != static_cast<std::size_t>(tensor.numel()) * static_cast<std::size_t>(ptfile::dtype_size(tensor.dtype)))
        __builtin_trap();  // contiguous_bytes() must give numel elements
    }
  } catch (const detkit::CheckpointError&) {
  }
  return 0;
}
