// PyTorch checkpoint files, read without Python and without running anything in them.
//
// What it reads: the files `torch.save` writes — the zip form (torch >= 1.6: a stored zip holding
// PREFIX/data.pkl and one record PREFIX/data/KEY per storage; TorchScript archives have the same layout)
// and the legacy form (`_use_new_zipfile_serialization=False`: magic number, protocol, sys_info, the
// pickle, the storage keys, then each storage's raw bytes). Storages of every plain dtype (float32/64,
// float16, bfloat16, int8/16/32/64, uint8, bool, complex64/128) in either byte order. The pickle is
// parsed by models/pt_pickle.h; tensors are recognised from torch's rebuild calls
// (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, `_rebuild_parameter_with_state`,
// `_rebuild_from_type_v2`), anything else is kept as a plain value.
//
// find_weights() then locates the model's tensors: a state_dict (an OrderedDict, `_metadata` and all),
// a training checkpoint's `ema` / `model` / `state_dict` entry (Ultralytics, Lightning, torchvision
// recipes), or a pickled nn.Module tree walked through `_parameters`, `_buffers` and `_modules`.
//
// Guarantees: no code from the file is run, and a malformed, truncated or tampered file throws
// CheckpointError (exit 6) naming the file and the record (zip entry, pickle byte offset, tensor name);
// it never crashes. Every zip record's CRC-32 is checked, used or not. Torch-free: used by `detkit import --list`.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/fs.h"
#include "models/pt_pickle.h"

namespace detkit::models::ptfile {

enum class DType { Float32, Float64, Float16, BFloat16, Int64, Int32, Int16, Int8, UInt8, Bool, Complex64, Complex128 };
const char* dtype_name(DType dtype);  // torch's names: "float32", "bfloat16", ...
int dtype_size(DType dtype);          // bytes per element

// One storage's bytes, little-endian (big-endian files are swapped on reading).
struct Storage {
  DType dtype = DType::UInt8;
  std::string_view bytes;  // points into the Checkpoint that owns it
  int64_t numel() const { return static_cast<int64_t>(bytes.size()) / dtype_size(dtype); }
};

// A tensor as stored: a strided view of a storage (several tensors may share one storage).
struct TensorRef {
  std::string name;                // its key in the state dict ("model.0.conv.weight")
  DType dtype = DType::Float32;
  std::vector<int64_t> shape, stride;
  int64_t offset = 0;              // in elements of the storage
  const Storage* storage = nullptr;
  bool parameter = false;          // an nn.Parameter (else a buffer or a plain tensor)

  int64_t numel() const;
  // The elements in row-major order, little-endian, gathered through the strides.
  std::string contiguous_bytes() const;
};

// A parsed checkpoint file. Holds the file's bytes; Storage and TensorRef point into it, so it is moved,
// never copied.
class Checkpoint {
 public:
  Checkpoint() = default;
  Checkpoint(Checkpoint&&) = default;
  Checkpoint& operator=(Checkpoint&&) = default;
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  std::string source;               // the file, for messages
  std::string container;            // "zip" or "legacy"
  std::string record_prefix;        // zip: "archive/" (the folder holding data.pkl)
  std::vector<std::string> records; // zip: every record name
  pickle::Document document;        // the main pickle

  // A LibTorch archive (torch.jit.save, detkit's own checkpoints): it keeps constants.pkl beside data.pkl,
  // which torch.save never writes.
  bool is_libtorch_archive() const;

  // The tensor `value` is (a torch rebuild call), or nullopt for any other value. Throws CheckpointError
  // naming `name` when it is a tensor whose storage or geometry is inconsistent.
  std::optional<TensorRef> as_tensor(const pickle::Value* value, const std::string& name) const;

  // Internal: the storages by key, and the bytes they point into.
  std::shared_ptr<const std::string> bytes;
  std::vector<std::shared_ptr<const std::string>> owned;  // swapped or legacy-view copies
  std::map<std::string, Storage> storages;
};

// Reads and parses `path` (or bytes read from `source`). Throws CheckpointError.
Checkpoint read_checkpoint(const fs::path& path);
Checkpoint parse_checkpoint(std::string bytes, const std::string& source);

// Where in the file the weights were found, and what came with them.
struct FoundWeights {
  std::string entry;                    // "" (the whole file), "ema", "model", "state_dict", ...
  std::string layout;                   // "state_dict" or "module tree"
  std::string module_class;             // the root module's class for a module tree ("ultralytics.nn.tasks.DetectionModel")
  std::vector<TensorRef> tensors;       // in file order; prefixes such as "module." (DDP) removed
  std::vector<std::string> class_names; // when the file names its classes (a module's `names`), else empty
  int64_t imgsz = 0;                    // training image size when the file records it (train_args), else 0
  std::vector<std::string> notes;       // what was chosen and skipped, for the import report
};

// Locates the model's tensors in `checkpoint`. Throws CheckpointError naming the file when it holds no
// tensors, or naming the tensor when one's storage or geometry is inconsistent.
FoundWeights find_weights(const Checkpoint& checkpoint);

// CRC-32 (zip / zlib polynomial) of `data`, continuing from `crc`.
uint32_t crc32(std::string_view data, uint32_t crc = 0);

}  // namespace detkit::models::ptfile
