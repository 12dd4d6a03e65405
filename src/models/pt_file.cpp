#include "models/pt_file.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/text.h"

namespace detkit::models::ptfile {

using pickle::Kind;
using pickle::Value;

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int64: return "int64";
    case DType::Int32: return "int32";
    case DType::Int16: return "int16";
    case DType::Int8: return "int8";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
    case DType::Complex64: return "complex64";
    case DType::Complex128: return "complex128";
  }
  return "?";
}

int dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float64:
    case DType::Int64:
    case DType::Complex64: return 8;
    case DType::Complex128: return 16;
    case DType::Float32:
    case DType::Int32: return 4;
    case DType::Float16:
    case DType::BFloat16:
    case DType::Int16: return 2;
    case DType::Int8:
    case DType::UInt8:
    case DType::Bool: return 1;
  }
  return 1;
}

uint32_t crc32(std::string_view data, uint32_t crc) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (const char ch : data) crc = table[(crc ^ static_cast<unsigned char>(ch)) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  return n;
}

std::string TensorRef::contiguous_bytes() const {
  DETKIT_ASSERT(storage, "a TensorRef without storage");
  const int64_t n = numel();
  const auto size = static_cast<std::size_t>(dtype_size(dtype));
  std::string out(static_cast<std::size_t>(n) * size, '\0');
  if (n == 0) return out;
  // Walk the index space in row-major order; geometry was checked against the storage when made.
  const std::size_t dims = shape.size();
  std::vector<int64_t> index(dims, 0);
  int64_t at = offset;
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(&out[static_cast<std::size_t>(i) * size], storage->bytes.data() + static_cast<std::size_t>(at) * size, size);
    for (std::size_t d = dims; d-- > 0;) {
      if (++index[d] < shape[d]) {
        at += stride[d];
        break;
      }
      at -= stride[d] * (shape[d] - 1);
      index[d] = 0;
    }
  }
  return out;
}

namespace {

[[noreturn]] void damaged(const std::string& source, const std::string& what, const std::string& why = "") {
  throw CheckpointError({cat(source, ": ", what), why,
                         "check that the file was copied completely (compare its size and checksum with the "
                         "original) and that it was written by torch.save or by detkit"});
}

uint64_t le(std::string_view data, std::size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(data[at + static_cast<std::size_t>(i)]);
  return v;
}

// ------------------------------------------------------------------------------------------- zip records

struct ZipRecord {
  std::string name;
  uint64_t offset = 0;  // of the data
  uint64_t size = 0;  // stored size (the compressed size for a compressed record)
  uint32_t crc = 0;
  uint64_t method = 0;  // 0: stored; LibTorch archives deflate their code/ records, which are never read here
};

std::vector<ZipRecord> read_zip_directory(std::string_view data, const std::string& source) {
  // The end-of-central-directory record: 22 bytes plus a comment of up to 65535 bytes at the very end.
  if (data.size() < 22) damaged(source, "the zip is too short to hold a directory (truncated?)");
  std::size_t eocd = std::string_view::npos;
  const std::size_t lowest = data.size() >= 22 + 65535 ? data.size() - 22 - 65535 : 0;
  for (std::size_t at = data.size() - 22 + 1; at-- > lowest;)
    if (le(data, at, 4) == 0x06054b50u) {
      eocd = at;
      break;
    }
  if (eocd == std::string_view::npos) damaged(source, "the zip has no central directory (the file is truncated)");
  uint64_t entries = le(data, eocd + 10, 2), dir_size = le(data, eocd + 12, 4), dir_offset = le(data, eocd + 16, 4);
  if (entries == 0xFFFF || dir_size == 0xFFFFFFFFu || dir_offset == 0xFFFFFFFFu) {  // zip64
    if (eocd < 20 || le(data, eocd - 20, 4) != 0x07064b50u) damaged(source, "a zip64 file without its zip64 locator");
    const uint64_t z64 = le(data, eocd - 20 + 8, 8);
    if (data.size() < 56 || z64 > data.size() - 56 || le(data, static_cast<std::size_t>(z64), 4) != 0x06064b50u)
      damaged(source, "a zip64 directory record out of place");
    entries = le(data, static_cast<std::size_t>(z64) + 32, 8);
    dir_size = le(data, static_cast<std::size_t>(z64) + 40, 8);
    dir_offset = le(data, static_cast<std::size_t>(z64) + 48, 8);
  }
  if (dir_offset > data.size() || dir_size > data.size() - dir_offset || entries > dir_size / 46)
    damaged(source, "the zip directory points outside the file");
  std::vector<ZipRecord> records;
  std::size_t at = static_cast<std::size_t>(dir_offset);
  const std::size_t end = static_cast<std::size_t>(dir_offset + dir_size);
  for (uint64_t i = 0; i < entries; ++i) {
    if (at + 46 > end || le(data, at, 4) != 0x02014b50u) damaged(source, cat("zip directory entry ", i, " is damaged"));
    const uint64_t method = le(data, at + 10, 2);
    ZipRecord r;
    r.crc = static_cast<uint32_t>(le(data, at + 16, 4));
    uint64_t compressed = le(data, at + 20, 4);
    r.size = le(data, at + 24, 4);
    const std::size_t name_len = le(data, at + 28, 2), extra_len = le(data, at + 30, 2), comment_len = le(data, at + 32, 2);
    uint64_t local = le(data, at + 42, 4);
    if (at + 46 + name_len + extra_len + comment_len > end) damaged(source, cat("zip directory entry ", i, " runs past the directory"));
    r.name.assign(data.substr(at + 46, name_len));
    // Zip64 extended information: the 64-bit values replace those saturated at 0xFFFFFFFF, in order.
    for (std::size_t e = at + 46 + name_len, e_end = e + extra_len; e + 4 <= e_end;) {
      const uint64_t id = le(data, e, 2), len = le(data, e + 2, 2);
      if (e + 4 + len > e_end) break;
      if (id == 0x0001) {
        std::size_t f = e + 4;
        const auto next = [&](uint64_t& field) {
          if (field == 0xFFFFFFFFu && f + 8 <= e + 4 + len) {
            field = le(data, f, 8);
            f += 8;
          }
        };
        next(r.size);
        next(compressed);
        next(local);
      }
      e += 4 + static_cast<std::size_t>(len);
    }
    r.method = method;
    if (method == 0 && compressed != r.size) damaged(source, cat("zip record '", r.name, "' has inconsistent sizes"));
    r.size = compressed;
    if (local > data.size() - 30 || le(data, static_cast<std::size_t>(local), 4) != 0x04034b50u)
      damaged(source, cat("zip record '", r.name, "' has no local header where the directory says"));
    const uint64_t data_at = local + 30 + le(data, static_cast<std::size_t>(local) + 26, 2) + le(data, static_cast<std::size_t>(local) + 28, 2);
    if (data_at > data.size() || r.size > data.size() - data_at)
      damaged(source, cat("zip record '", r.name, "' runs past the end of the file (truncated)"));
    r.offset = data_at;
    records.push_back(std::move(r));
    at += 46 + name_len + extra_len + comment_len;
  }
  return records;
}

// ---------------------------------------------------------------------------------------- storages

std::optional<DType> storage_dtype(const Value* type) {
  if (!type || type->kind != Kind::Global) return std::nullopt;
  static const std::map<std::string, DType> names = {
      {"FloatStorage", DType::Float32},   {"DoubleStorage", DType::Float64}, {"HalfStorage", DType::Float16},
      {"BFloat16Storage", DType::BFloat16}, {"LongStorage", DType::Int64}, {"IntStorage", DType::Int32},
      {"ShortStorage", DType::Int16},     {"CharStorage", DType::Int8},      {"ByteStorage", DType::UInt8},
      {"BoolStorage", DType::Bool},       {"ComplexFloatStorage", DType::Complex64},
      {"ComplexDoubleStorage", DType::Complex128}, {"UntypedStorage", DType::UInt8}};
  if (type->text != "torch" && type->text != "torch.cuda") return std::nullopt;
  const auto it = names.find(type->name);
  if (it == names.end()) return std::nullopt;
  return it->second;
}

// Big-endian files: swap each element's bytes (complex numbers: each half).
std::string swapped(std::string_view bytes, DType dtype) {
  std::string out(bytes);
  int unit = dtype_size(dtype);
  if (dtype == DType::Complex64 || dtype == DType::Complex128) unit /= 2;
  for (std::size_t i = 0; i + static_cast<std::size_t>(unit) <= out.size(); i += static_cast<std::size_t>(unit))
    std::reverse(out.begin() + static_cast<std::ptrdiff_t>(i), out.begin() + static_cast<std::ptrdiff_t>(i) + unit);
  return out;
}

// The persistent ids of a pickle: ('storage', StorageType, key, location, numel[, view_metadata]).
struct StorageId {
  DType dtype;
  std::string key;
  int64_t numel;
  const Value* view = nullptr;  // legacy: (view_key, offset, size) or None
};

std::optional<StorageId> storage_id(const Value* pid) {
  if (!pid || pid->kind != Kind::Persistent || !pid->args || pid->args->kind != Kind::Tuple) return std::nullopt;
  const auto& t = pid->args->items;
  if (t.size() < 5 || t[0]->kind != Kind::String || t[0]->text != "storage") return std::nullopt;
  const auto dtype = storage_dtype(t[1]);
  if (!dtype) return std::nullopt;
  StorageId id{*dtype, "", 0, nullptr};
  if (t[2]->kind == Kind::String) id.key = t[2]->text;
  else if (t[2]->kind == Kind::Int) id.key = std::to_string(t[2]->integer);
  else return std::nullopt;
  if (t[4]->kind != Kind::Int || t[4]->integer < 0) return std::nullopt;
  id.numel = t[4]->integer;
  if (t.size() > 5 && t[5]->kind == Kind::Tuple) id.view = t[5];
  return id;
}

// Every persistent id reachable from the root, breadth-first (bounded: the arena is finite).
void collect_storage_ids(const Value* root, std::vector<StorageId>& out, const std::string& source) {
  std::vector<const Value*> todo{root};
  std::set<const Value*> seen;
  while (!todo.empty()) {
    const Value* v = todo.back();
    todo.pop_back();
    if (!v || !seen.insert(v).second) continue;
    if (v->kind == Kind::Persistent) {
      const auto id = storage_id(v);
      if (!id) damaged(source, cat("a persistent reference that is not a torch storage: ", pickle::describe(v->args)),
                       "the file refers to data outside its pickle in a way torch.save does not");
      out.push_back(*id);
      continue;
    }
    for (const Value* c : v->items) todo.push_back(c);
    for (const auto& [k, val] : v->entries) {
      todo.push_back(k);
      todo.push_back(val);
    }
    todo.push_back(v->callable);
    todo.push_back(v->args);
    todo.push_back(v->state);
  }
}

void parse_zip(Checkpoint& ck) {
  const std::string_view data(*ck.bytes);
  const std::vector<ZipRecord> records = read_zip_directory(data, ck.source);
  const ZipRecord* pkl = nullptr;
  for (const auto& r : records) {
    ck.records.push_back(r.name);
    const std::size_t slash = r.name.find('/');
    if (slash != std::string::npos && r.name.compare(slash + 1, std::string::npos, "data.pkl") == 0) pkl = &r;
  }
  if (!pkl) damaged(ck.source, "the zip has no data.pkl record", "it is a zip file but not one torch.save wrote");
  ck.record_prefix = pkl->name.substr(0, pkl->name.size() - 8);
  std::map<std::string, const ZipRecord*> by_name;
  for (const auto& r : records) by_name[r.name] = &r;
  const auto record = [&](const ZipRecord& r) {
    if (r.method != 0)
      throw CheckpointError({cat(ck.source, ": zip record '", r.name, "' is compressed (method ", r.method, ")"),
                             "torch.save writes the records it reads back uncompressed; this file was re-packed by another zip tool",
                             "unpack it and re-save it from Python with torch.save, or use the original file"});
    const std::string_view bytes = data.substr(static_cast<std::size_t>(r.offset), static_cast<std::size_t>(r.size));
    if (crc32(bytes) != r.crc)
      damaged(ck.source, cat("zip record '", r.name, "' fails its CRC-32 check"), "the file was changed or damaged after it was written");
    return bytes;
  };
  for (const auto& r : records)  // every stored record's CRC, used or not (compressed ones are never read)
    if (r.method == 0) record(r);
  bool big_endian = false;
  if (const auto it = by_name.find(ck.record_prefix + "byteorder"); it != by_name.end())
    big_endian = record(*it->second) == "big";
  try {
    ck.document = pickle::parse(record(*pkl));
  } catch (const pickle::PickleError& e) {
    damaged(ck.source, cat("record '", pkl->name, "' is not a readable pickle: ", e.what()));
  }
  std::vector<StorageId> ids;
  collect_storage_ids(ck.document.root(), ids, ck.source);
  for (const StorageId& id : ids) {
    if (ck.storages.count(id.key)) continue;
    const std::string name = ck.record_prefix + "data/" + id.key;
    const auto it = by_name.find(name);
    if (it == by_name.end()) damaged(ck.source, cat("storage record '", name, "' is missing"), "the zip lost records");
    const std::string_view bytes = record(*it->second);
    const uint64_t need = static_cast<uint64_t>(id.numel) * static_cast<uint64_t>(dtype_size(id.dtype));
    if (id.numel > (int64_t{1} << 48) || bytes.size() < need)
      damaged(ck.source, cat("storage record '", name, "' holds ", bytes.size(), " bytes, its reference says ", id.numel, " ",
                             dtype_name(id.dtype), " elements"));
    Storage s{id.dtype, bytes.substr(0, static_cast<std::size_t>(need))};
    if (big_endian) {
      ck.owned.push_back(std::make_shared<const std::string>(swapped(s.bytes, id.dtype)));
      s.bytes = *ck.owned.back();
    }
    ck.storages.emplace(id.key, s);
  }
}

// The legacy format: pickles back to back, then the storages' raw bytes in the order of the key list.
void parse_legacy(Checkpoint& ck) {
  const std::string_view data(*ck.bytes);
  std::size_t at = 0;
  const auto next_pickle = [&](const char* what) {
    std::size_t used = 0;
    try {
      pickle::Document doc = pickle::parse(data.substr(at), &used);
      at += used;
      return doc;
    } catch (const pickle::PickleError& e) {
      damaged(ck.source, cat("the ", what, " pickle starting at byte ", at, " is not readable: ", e.what()));
    }
  };
  const pickle::Document magic = next_pickle("magic-number");
  // 0x1950a86a20f9469cfc6c, little-endian two's complement as LONG1 stores it.
  static const std::string kMagic = std::string("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);
  if (magic.root()->kind != Kind::BigInt || magic.root()->text != kMagic)
    damaged(ck.source, "it is neither a zip nor a legacy torch.save file (wrong magic number)",
            "it may be a file of another framework, or not a checkpoint at all");
  const pickle::Document protocol = next_pickle("protocol-version");
  if (protocol.root()->kind != Kind::Int || protocol.root()->integer != 1001)
    damaged(ck.source, cat("legacy torch.save protocol ", pickle::describe(protocol.root()), ", expected 1001"));
  // sys_info records the writer's byte order, but torch writes legacy storages little-endian on every
  // machine (THPStorage_writeFileRaw swaps on big-endian hosts), so nothing here depends on it.
  next_pickle("sys_info");
  ck.document = next_pickle("main");
  const pickle::Document keys = next_pickle("storage-key");
  if (keys.root()->kind != Kind::List) damaged(ck.source, "the legacy storage-key list is not a list");
  std::vector<StorageId> ids;
  collect_storage_ids(ck.document.root(), ids, ck.source);
  std::map<std::string, StorageId> by_key;
  for (const StorageId& id : ids) by_key.emplace(id.key, id);
  for (const Value* key : keys.root()->items) {
    if (key->kind != Kind::String) damaged(ck.source, "a legacy storage key is not a string");
    const auto it = by_key.find(key->text);
    if (it == by_key.end()) damaged(ck.source, cat("legacy storage '", key->text, "' is not referenced by the pickle"));
    if (at + 8 > data.size()) damaged(ck.source, cat("legacy storage '", key->text, "' is missing (the file is truncated)"));
    const uint64_t numel = le(data, at, 8);
    at += 8;
    const uint64_t size = static_cast<uint64_t>(dtype_size(it->second.dtype));
    if (numel > (uint64_t{1} << 48) || numel * size > data.size() - at)
      damaged(ck.source, cat("legacy storage '", key->text, "' runs past the end of the file (truncated)"));
    Storage s{it->second.dtype, data.substr(at, static_cast<std::size_t>(numel * size))};
    at += static_cast<std::size_t>(numel * size);
    ck.storages[key->text] = s;
  }
  // Old files store views of a storage as their own keys: (view_key, offset, size) into a root storage.
  for (const StorageId& id : ids) {
    if (!id.view || id.view->items.size() != 3) continue;
    const Value* vkey = id.view->items[0];
    const Value* off = id.view->items[1];
    const Value* len = id.view->items[2];
    const auto root = ck.storages.find(id.key);
    if (vkey->kind != Kind::String || off->kind != Kind::Int || len->kind != Kind::Int || root == ck.storages.end()) continue;
    const int64_t n = root->second.numel();
    if (off->integer < 0 || len->integer < 0 || off->integer > n || len->integer > n - off->integer)
      damaged(ck.source, cat("legacy storage view '", vkey->text, "' lies outside its storage"));
    const auto unit = static_cast<std::size_t>(dtype_size(root->second.dtype));
    ck.storages[vkey->text] = Storage{root->second.dtype, root->second.bytes.substr(static_cast<std::size_t>(off->integer) * unit,
                                                                                    static_cast<std::size_t>(len->integer) * unit)};
  }
  for (const StorageId& id : ids)
    if (!ck.storages.count(id.key) && !id.view) damaged(ck.source, cat("legacy storage '", id.key, "' has no data"));
}

bool int_tuple(const Value* v, std::vector<int64_t>& out) {
  if (!v || (v->kind != Kind::Tuple && v->kind != Kind::List)) return false;
  out.clear();
  for (const Value* x : v->items) {
    if (x->kind != Kind::Int) return false;
    out.push_back(x->integer);
  }
  return true;
}

bool is_torch_utils(const Value* v, const char* name) { return v && v->is_global("torch._utils", name); }

}  // namespace

bool Checkpoint::is_libtorch_archive() const {
  return std::any_of(records.begin(), records.end(), [](const std::string& r) {
    return r.size() >= 13 && r.compare(r.size() - 13, 13, "constants.pkl") == 0;
  });
}

std::optional<TensorRef> Checkpoint::as_tensor(const Value* value, const std::string& name) const {
  const Value* by = value ? value->made_by() : nullptr;
  if (!by || !value->args || value->args->kind != Kind::Tuple) return std::nullopt;
  const auto& a = value->args->items;
  // Parameters wrap a tensor: _rebuild_parameter(data, requires_grad, hooks[, state]).
  if (is_torch_utils(by, "_rebuild_parameter") || is_torch_utils(by, "_rebuild_parameter_with_state")) {
    if (a.empty()) return std::nullopt;
    auto t = as_tensor(a[0], name);
    if (t) t->parameter = true;
    return t;
  }
  // Tensor subclasses: _rebuild_from_type_v2(func, new_type, args, state).
  if (is_torch_utils(by, "_rebuild_from_type_v2")) {
    if (a.size() < 3 || !a[0] || a[0]->kind != Kind::Global || a[2]->kind != Kind::Tuple) return std::nullopt;
    Value call;
    call.kind = Kind::Object;
    call.callable = a[0];
    call.args = a[2];
    auto t = as_tensor(&call, name);
    if (t && a[1]->is_global("torch.nn.parameter", "Parameter")) t->parameter = true;
    return t;
  }
  if (!is_torch_utils(by, "_rebuild_tensor_v2") && !is_torch_utils(by, "_rebuild_tensor")) return std::nullopt;
  const auto bad = [&](const std::string& why) -> std::optional<TensorRef> {
    throw CheckpointError({cat(source, ": tensor '", name, "' cannot be read"), why,
                           "check that the file was copied completely; if it was written by a custom pickler, re-save "
                           "the state_dict with torch.save"});
  };
  if (a.size() < 4) return bad("its rebuild call has too few arguments");
  const auto id = storage_id(a[0]);
  if (!id) return bad(cat("its storage is ", pickle::describe(a[0])));
  const std::string key = id->view && !id->view->items.empty() && id->view->items[0]->kind == Kind::String ? id->view->items[0]->text : id->key;
  const auto it = storages.find(key);
  if (it == storages.end()) return bad(cat("its storage '", key, "' is not in the file"));
  TensorRef t;
  t.name = name;
  t.storage = &it->second;
  t.dtype = it->second.dtype;
  if (a[1]->kind != Kind::Int || !int_tuple(a[2], t.shape) || !int_tuple(a[3], t.stride) || t.shape.size() != t.stride.size())
    return bad("its offset, size or stride is malformed");
  t.offset = a[1]->integer;
  // Geometry: every element must lie inside the storage.
  int64_t last = t.offset, count = 1;
  if (t.offset < 0) return bad("a negative storage offset");
  if (t.offset > it->second.numel()) return bad(cat("its offset ", t.offset, " is past its storage of ", it->second.numel()));
  for (std::size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] < 0 || t.stride[d] < 0 || t.shape[d] > (int64_t{1} << 40) || t.stride[d] > (int64_t{1} << 40))
      return bad("a negative or absurd size or stride");
    if (t.shape[d] == 0) count = 0;
    else if (count) {
      if (count > (int64_t{1} << 40) / t.shape[d]) return bad("more elements than any file can hold");
      count *= t.shape[d];
      if (t.shape[d] > 1 && t.stride[d] > ((int64_t{1} << 50) - last) / (t.shape[d] - 1)) return bad("strides that point past any storage");
      last += (t.shape[d] - 1) * t.stride[d];
      if (last > (int64_t{1} << 50)) return bad("strides that point past any storage");
    }
  }
  if (count > 0 && last >= it->second.numel())
    return bad(cat("it reaches element ", last, " of a storage of ", it->second.numel()));
  return t;
}

Checkpoint parse_checkpoint(std::string bytes, const std::string& source) {
  Checkpoint ck;
  ck.source = source;
  ck.bytes = std::make_shared<const std::string>(std::move(bytes));
  const std::string_view data(*ck.bytes);
  if (data.empty()) damaged(source, "the file is empty");
  if (data.size() >= 4 && le(data, 0, 4) == 0x04034b50u) {
    ck.container = "zip";
    parse_zip(ck);
  } else if (data.size() > 262 && data.substr(257, 5) == "ustar") {
    throw CheckpointError({cat(source, ": a tar checkpoint (written by torch before 0.4)"), "this format predates 2018",
                           "load it with an old torch and re-save the state_dict with torch.save"});
  } else if (static_cast<unsigned char>(data[0]) == 0x80) {
    ck.container = "legacy";
    parse_legacy(ck);
  } else {
    damaged(source, "it is not a PyTorch checkpoint (neither a zip nor a pickle)",
            "detkit reads files written by torch.save (.pt, .pth, .ckpt) and its own checkpoints");
  }
  return ck;
}

Checkpoint read_checkpoint(const fs::path& path) {
  if (!fs::exists(path))
    throw CheckpointError({cat(path.string(), " does not exist"), "", "check the path of the weights file"});
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    throw CheckpointError({cat("cannot read ", path.string()), e.message(), "check the file's permissions"});
  }
  return parse_checkpoint(std::move(bytes), path.string());
}

// --------------------------------------------------------------------------------- finding the weights

namespace {

constexpr int kMaxModuleDepth = 64;

// A Dict or an Object's dict items (what SETITEMS gave a dict subclass).
bool dict_like(const Value* v) { return v && (v->kind == Kind::Dict || (v->kind == Kind::Object && !v->entries.empty())); }

// An nn.Module pickled whole: an object whose state holds _parameters, _buffers and _modules.
const Value* module_state(const Value* v) {
  if (!v || v->kind != Kind::Object || !v->state || v->state->kind != Kind::Dict) return nullptr;
  return v->state->get("_modules") && v->state->get("_parameters") ? v->state : nullptr;
}

std::string class_of(const Value* v) {
  const Value* by = v ? v->made_by() : nullptr;
  return by ? cat(by->text, ".", by->name) : std::string();
}

void walk_module(const Checkpoint& ck, const Value* module, const std::string& prefix, int depth, std::set<const Value*>& seen,
                 std::vector<TensorRef>& out) {
  const Value* state = module_state(module);
  if (!state || depth > kMaxModuleDepth || !seen.insert(module).second) return;
  std::set<std::string> non_persistent;
  if (const Value* np = state->get("_non_persistent_buffers_set"); np && np->kind == Kind::Set)
    for (const Value* n : np->items)
      if (n->kind == Kind::String) non_persistent.insert(n->text);
  for (const char* group : {"_parameters", "_buffers"}) {
    const Value* dict = state->get(group);
    if (!dict_like(dict)) continue;
    for (const auto& [k, v] : dict->entries) {
      if (k->kind != Kind::String || v->kind == Kind::None || non_persistent.count(k->text)) continue;
      if (auto t = ck.as_tensor(v, prefix + k->text)) out.push_back(std::move(*t));
    }
  }
  if (const Value* modules = state->get("_modules"); dict_like(modules))
    for (const auto& [k, v] : modules->entries)
      if (k->kind == Kind::String) walk_module(ck, v, prefix + k->text + ".", depth + 1, seen, out);
}

// The tensors of a dict used as a state_dict: its entries whose values are tensors.
std::vector<TensorRef> dict_tensors(const Checkpoint& ck, const Value* dict) {
  std::vector<TensorRef> out;
  if (!dict_like(dict)) return out;
  for (const auto& [k, v] : dict->entries) {
    if (k->kind != Kind::String) continue;
    if (auto t = ck.as_tensor(v, k->text)) out.push_back(std::move(*t));
  }
  return out;
}

std::vector<std::string> names_of(const Value* names) {
  std::vector<std::string> out;
  if (!names) return out;
  if (names->kind == Kind::List || names->kind == Kind::Tuple) {
    for (const Value* n : names->items)
      if (n->kind == Kind::String) out.push_back(n->text);
      else return {};
    return out;
  }
  if (dict_like(names)) {  // {0: 'person', 1: 'bicycle', ...}: ordered by the integer key
    std::map<int64_t, std::string> by_index;
    for (const auto& [k, v] : names->entries) {
      if (k->kind != Kind::Int || v->kind != Kind::String) return {};
      by_index[k->integer] = v->text;
    }
    int64_t expect = 0;
    for (const auto& [i, n] : by_index) {
      if (i != expect++) return {};
      out.push_back(n);
    }
  }
  return out;
}

// Removes a prefix every name carries (DDP's "module.", torch.compile's "_orig_mod.").
void strip_common_prefixes(std::vector<TensorRef>& tensors, std::vector<std::string>& notes) {
  for (const std::string prefix : {"module.", "_orig_mod."}) {
    if (tensors.empty()) return;
    const bool all = std::all_of(tensors.begin(), tensors.end(), [&](const TensorRef& t) { return t.name.rfind(prefix, 0) == 0; });
    if (!all) continue;
    for (auto& t : tensors) t.name.erase(0, prefix.size());
    notes.push_back(cat("removed the prefix '", prefix, "' every name carried"));
  }
}

}  // namespace

FoundWeights find_weights(const Checkpoint& ck) {
  FoundWeights found;
  const Value* root = ck.document.root();
  const auto from_module = [&](const Value* module, const std::string& entry) {
    std::set<const Value*> seen;
    found.entry = entry;
    found.layout = "module tree";
    found.module_class = class_of(module);
    walk_module(ck, module, "", 0, seen, found.tensors);
    found.class_names = names_of(module->state->get("names"));
  };
  // Training checkpoints: the EMA weights evaluate better than the raw ones, so they come first (as in
  // Ultralytics' own loader); then the common names of a model's weights.
  static const char* const kEntries[] = {"ema", "model_ema", "model", "state_dict", "model_state_dict", "model_state", "net", "weights", "params"};
  if (module_state(root)) {
    from_module(root, "");
  } else if (dict_like(root)) {
    std::vector<TensorRef> direct = dict_tensors(ck, root);
    if (!direct.empty()) {
      found.layout = "state_dict";
      found.tensors = std::move(direct);
    } else {
      for (const char* entry : kEntries) {
        const Value* v = root->get(entry);
        if (!v || v->kind == Kind::None) continue;
        if (module_state(v)) {
          from_module(v, entry);
        } else if (auto t = dict_tensors(ck, v); !t.empty()) {
          found.entry = entry;
          found.layout = "state_dict";
          found.tensors = std::move(t);
        } else {
          continue;
        }
        for (const char* other : kEntries)
          if (std::string(other) != entry && root->get(other) && root->get(other)->kind != Kind::None &&
              (module_state(root->get(other)) || !dict_tensors(ck, root->get(other)).empty()))
            found.notes.push_back(cat("read the '", entry, "' weights; the file also holds '", other, "'"));
        break;
      }
    }
    if (const Value* args = root->get("train_args"); dict_like(args))
      if (const Value* imgsz = args->get("imgsz"); imgsz && imgsz->kind == Kind::Int && imgsz->integer > 0) found.imgsz = imgsz->integer;
  }
  if (found.tensors.empty()) {
    if (ck.is_libtorch_archive())
      throw CheckpointError({cat(ck.source, ": a LibTorch archive (a detkit checkpoint or a TorchScript model), not a torch.save file"),
                             "--list reads torch.save files; a TorchScript model's code is not read",
                             "for a detkit checkpoint, run 'detkit import FILE --out OUT' (it reads detkit checkpoints) or "
                             "'detkit eval --model FILE'"});
    std::string keys;
    if (dict_like(root))
      for (const auto& [k, v] : root->entries)
        if (k->kind == Kind::String) keys += (keys.empty() ? "" : ", ") + k->text;
    throw CheckpointError({cat(ck.source, ": no model weights found"),
                           dict_like(root) ? cat("its top level is a dict with keys: ", keys.substr(0, 300))
                                           : cat("its top level is ", pickle::describe(root)),
                           "save the model's weights with torch.save(model.state_dict(), FILE)"});
  }
  strip_common_prefixes(found.tensors, found.notes);
  return found;
}

}  // namespace detkit::models::ptfile
