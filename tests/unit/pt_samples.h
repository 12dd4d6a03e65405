// Hand-built PyTorch checkpoint files, header-only: a pickle opcode writer, a stored (uncompressed) zip
// writer with CRC-32, and the zip and legacy files torch.save writes around them. Used by the pt_file
// tests (test_pt_pickle.cpp) and by the fuzzers' seed corpus (fuzz/seeds.cpp), so no binary checkpoint
// lives in the repository and no Python or LibTorch is needed to make one.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace detkit::samples::pt {

// Appends pickle opcodes and their arguments; every method returns *this, so a stream reads as a chain:
//   Pickle().proto(2).integer(7).stop().out()
class Pickle {
 public:
  // Raw pieces.
  Pickle& op(unsigned char code) {
    out_ += static_cast<char>(code);
    return *this;
  }
  Pickle& raw(std::string_view bytes) {
    out_.append(bytes.data(), bytes.size());
    return *this;
  }
  Pickle& le(uint64_t v, int bytes) {  // little-endian, `bytes` long
    for (int i = 0; i < bytes; ++i) out_ += static_cast<char>((v >> (8 * i)) & 0xFF);
    return *this;
  }
  Pickle& line(std::string_view text) {  // a protocol-0 text argument
    raw(text);
    out_ += '\n';
    return *this;
  }

  // Framing.
  Pickle& proto(int version) { return op(0x80).le(static_cast<uint64_t>(version), 1); }
  Pickle& stop() { return op('.'); }
  Pickle& mark() { return op('('); }

  // Scalars, as Python's pickler (protocol 2 and up) writes them.
  Pickle& none() { return op('N'); }
  Pickle& boolean(bool b) { return op(b ? 0x88 : 0x89); }
  Pickle& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').le(static_cast<uint64_t>(v), 1);
    if (v >= 0 && v < 65536) return op('M').le(static_cast<uint64_t>(v), 2);
    if (v >= INT32_MIN && v <= INT32_MAX) return op('J').le(static_cast<uint32_t>(static_cast<int32_t>(v)), 4);
    return op(0x8a).long_bytes(v);
  }
  Pickle& real(double v) {  // BINFLOAT: big-endian IEEE double
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    op('G');
    for (int i = 7; i >= 0; --i) out_ += static_cast<char>((bits >> (8 * i)) & 0xFF);
    return *this;
  }
  Pickle& unicode(std::string_view utf8) {  // str: SHORT_BINUNICODE or BINUNICODE
    if (utf8.size() < 256) return op(0x8c).le(utf8.size(), 1).raw(utf8);
    return op('X').le(utf8.size(), 4).raw(utf8);
  }
  Pickle& binbytes(std::string_view bytes) {  // bytes: SHORT_BINBYTES or BINBYTES
    if (bytes.size() < 256) return op('C').le(bytes.size(), 1).raw(bytes);
    return op('B').le(bytes.size(), 4).raw(bytes);
  }

  // References to callables.
  Pickle& global(std::string_view module, std::string_view name) { return op('c').line(module).line(name); }
  // A GLOBAL written once, then read back from the memo (as Python's pickler does).
  Pickle& memo_global(const std::string& module, const std::string& name) {
    const std::string key = module + "\n" + name;
    const auto it = globals_.find(key);
    if (it != globals_.end()) return binget(it->second);
    global(module, name);
    globals_[key] = next_memo_;
    return binput(next_memo_++);
  }

  // Containers and calls.
  Pickle& tuple(int n) {  // the last n values (0 to 3) as a tuple
    static const unsigned char codes[] = {')', 0x85, 0x86, 0x87};
    return op(codes[n]);
  }
  Pickle& tuple_from_mark() { return op('t'); }
  Pickle& empty_list() { return op(']'); }
  Pickle& empty_dict() { return op('}'); }
  Pickle& append() { return op('a'); }
  Pickle& appends() { return op('e'); }
  Pickle& setitem() { return op('s'); }
  Pickle& setitems() { return op('u'); }
  Pickle& reduce() { return op('R'); }
  Pickle& build() { return op('b'); }
  Pickle& newobj() { return op(0x81); }
  Pickle& binpersid() { return op('Q'); }
  Pickle& binput(uint32_t key) { return key < 256 ? op('q').le(key, 1) : op('r').le(key, 4); }
  Pickle& binget(uint32_t key) { return key < 256 ? op('h').le(key, 1) : op('j').le(key, 4); }

  const std::string& out() const { return out_; }

 private:
  // LONG1's argument: the length, then the shortest little-endian two's complement of v.
  Pickle& long_bytes(int64_t v) {
    std::string bytes;
    for (int i = 0; i < 8; ++i) bytes += static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF);
    while (bytes.size() > 1) {
      const auto last = static_cast<unsigned char>(bytes[bytes.size() - 1]);
      const auto prev = static_cast<unsigned char>(bytes[bytes.size() - 2]);
      if ((last == 0x00 && !(prev & 0x80)) || (last == 0xFF && (prev & 0x80))) bytes.pop_back();
      else break;
    }
    le(bytes.size(), 1);
    return raw(bytes);
  }

  std::string out_;
  std::map<std::string, uint32_t> globals_;
  uint32_t next_memo_ = 0;
};

// ------------------------------------------------------------------------------------------------- zip

// CRC-32 as zip and zlib compute it (bitwise: slow, but these files are tiny).
inline uint32_t crc32(std::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const char ch : data) {
    crc ^= static_cast<unsigned char>(ch);
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
  }
  return ~crc;
}

struct Record {
  std::string name;
  std::string data;
};

// A zip of stored (uncompressed) records: a local header per record, the central directory, then the end
// record. Like torch's writer, each record's data starts on a 64-byte boundary (an "FB" extra field pads
// the local header).
inline std::string stored_zip(const std::vector<Record>& records) {
  const auto put = [](std::string& s, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) s += static_cast<char>((v >> (8 * i)) & 0xFF);
  };
  std::string out, directory;
  for (const Record& r : records) {
    const uint32_t crc = crc32(r.data);
    const std::size_t offset = out.size();
    const std::size_t unpadded = offset + 30 + r.name.size() + 4;
    const std::size_t pad = (64 - unpadded % 64) % 64;
    put(out, 0x04034b50u, 4);
    put(out, 20, 2);  // version needed
    put(out, 0, 2);   // flags
    put(out, 0, 2);   // method: stored
    put(out, 0, 2);   // time
    put(out, 0x21, 2);  // date: 1980-01-01
    put(out, crc, 4);
    put(out, r.data.size(), 4);
    put(out, r.data.size(), 4);
    put(out, r.name.size(), 2);
    put(out, 4 + pad, 2);
    out += r.name;
    put(out, 0x4246, 2);  // "FB"
    put(out, pad, 2);
    out.append(pad, 'Z');
    out += r.data;

    put(directory, 0x02014b50u, 4);
    put(directory, 20, 2);  // version made by
    put(directory, 20, 2);  // version needed
    put(directory, 0, 2);
    put(directory, 0, 2);
    put(directory, 0, 2);
    put(directory, 0x21, 2);
    put(directory, crc, 4);
    put(directory, r.data.size(), 4);
    put(directory, r.data.size(), 4);
    put(directory, r.name.size(), 2);
    put(directory, 0, 2);  // extra
    put(directory, 0, 2);  // comment
    put(directory, 0, 2);  // disk
    put(directory, 0, 2);  // internal attributes
    put(directory, 0, 4);  // external attributes
    put(directory, offset, 4);
    directory += r.name;
  }
  const std::size_t directory_offset = out.size();
  out += directory;
  put(out, 0x06054b50u, 4);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, records.size(), 2);
  put(out, records.size(), 2);
  put(out, directory.size(), 4);
  put(out, directory_offset, 4);
  put(out, 0, 2);
  return out;
}

// --------------------------------------------------------------------------------------------- torch

// One tensor of a state dict: torch._utils._rebuild_tensor_v2(storage, offset, shape, stride, False,
// OrderedDict()), the storage being the persistent id ('storage', torch.<storage_type>, key, 'cpu', numel).
struct TensorSpec {
  std::string name = "w";
  std::string storage_key = "0";
  std::string storage_type = "FloatStorage";
  int64_t storage_numel = 4;
  int64_t offset = 0;
  std::vector<int64_t> shape{2, 2}, stride{2, 1};
  bool parameter = false;  // wrapped in torch._utils._rebuild_parameter(tensor, True, OrderedDict())
};

// Appends the rebuild call of `t`. `legacy`: the persistent id has the sixth element (view metadata, None)
// that the legacy format writes.
inline void tensor(Pickle& p, const TensorSpec& t, bool legacy = false) {
  if (t.parameter) p.memo_global("torch._utils", "_rebuild_parameter");
  p.memo_global("torch._utils", "_rebuild_tensor_v2");
  p.mark();
  p.mark().unicode("storage").memo_global("torch", t.storage_type).unicode(t.storage_key).unicode("cpu").integer(t.storage_numel);
  if (legacy) p.none();
  p.tuple_from_mark().binpersid();
  p.integer(t.offset);
  p.mark();
  for (const int64_t d : t.shape) p.integer(d);
  p.tuple_from_mark();
  p.mark();
  for (const int64_t s : t.stride) p.integer(s);
  p.tuple_from_mark();
  p.boolean(false);
  p.memo_global("collections", "OrderedDict").tuple(0).reduce();
  p.tuple_from_mark().reduce();
  if (t.parameter) p.boolean(true).memo_global("collections", "OrderedDict").tuple(0).reduce().tuple(3).reduce();
}

// A whole protocol-2 pickle of OrderedDict{name: tensor, ...}, with the `_metadata` attribute a
// state_dict carries (set by BUILD after the items, as pickle writes an OrderedDict subclass's state).
inline std::string state_dict_pickle(const std::vector<TensorSpec>& tensors, bool legacy = false) {
  Pickle p;
  p.proto(2).memo_global("collections", "OrderedDict").tuple(0).reduce();
  p.mark();
  for (const TensorSpec& t : tensors) {
    p.unicode(t.name);
    tensor(p, t, legacy);
  }
  p.setitems();
  p.empty_dict().unicode("_metadata").memo_global("collections", "OrderedDict").tuple(0).reduce();
  p.unicode("").empty_dict().unicode("version").integer(1).setitem().setitem();
  p.setitem().build();
  p.stop();
  return p.out();
}

// A training checkpoint holding a pickled nn.Module tree, as Ultralytics writes one:
//   {"model": models.Net(names={0: "cat", 1: "dog"}, conv=Conv2d(weight=Parameter(`weight`), bias=None,
//                        buffer running=`running`)),
//    "train_args": {"imgsz": 640}}
// Each module is cls.__new__(cls) (NEWOBJ) whose BUILD state holds _parameters, _buffers and _modules.
inline std::string module_tree_pickle(TensorSpec weight, const TensorSpec& running) {
  weight.parameter = true;
  Pickle p;
  const auto ordered_dict = [&] { p.memo_global("collections", "OrderedDict").tuple(0).reduce(); };
  p.proto(2).empty_dict().mark();
  p.unicode("model").memo_global("models", "Net").tuple(0).newobj();
  p.empty_dict().mark();
  p.unicode("training").boolean(true);
  p.unicode("_parameters");
  ordered_dict();
  p.unicode("_buffers");
  ordered_dict();
  p.unicode("_modules");
  ordered_dict();
  p.mark().unicode("conv");
  {  // the child module
    p.memo_global("torch.nn.modules.conv", "Conv2d").tuple(0).newobj();
    p.empty_dict().mark();
    p.unicode("training").boolean(true);
    p.unicode("_parameters");
    ordered_dict();
    p.mark().unicode("weight");
    tensor(p, weight);
    p.unicode("bias").none().setitems();
    p.unicode("_buffers");
    ordered_dict();
    p.mark().unicode("running");
    tensor(p, running);
    p.setitems();
    p.unicode("_modules");
    ordered_dict();
    p.unicode("in_channels").integer(2);
    p.setitems().build();
  }
  p.setitems();
  p.unicode("names").empty_dict().mark().integer(0).unicode("cat").integer(1).unicode("dog").setitems();
  p.setitems().build();
  p.unicode("train_args").empty_dict().unicode("imgsz").integer(640).setitem();
  p.setitems().stop();
  return p.out();
}

// Little-endian float32 bytes.
inline std::string floats(std::initializer_list<float> values) {
  std::string out;
  for (const float v : values) {
    uint32_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    for (int i = 0; i < 4; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xFF);
  }
  return out;
}

struct StorageBytes {
  std::string key;
  std::string bytes;
  int element_size = 4;  // for the legacy form's element count
};

// The zip form of torch.save: PREFIX/data.pkl, [PREFIX/byteorder], PREFIX/data/KEY..., PREFIX/version.
inline std::string torch_zip(const std::string& data_pkl, const std::vector<StorageBytes>& storages,
                             const std::string& prefix = "archive", const std::string& byteorder = "") {
  std::vector<Record> records{{prefix + "/data.pkl", data_pkl}};
  if (!byteorder.empty()) records.push_back({prefix + "/byteorder", byteorder});
  for (const StorageBytes& s : storages) records.push_back({prefix + "/data/" + s.key, s.bytes});
  records.push_back({prefix + "/version", "3\n"});
  return stored_zip(records);
}

// The legacy form (_use_new_zipfile_serialization=False): pickles of the magic number, the protocol
// version and sys_info, then `object_pickle` (whose persistent ids carry the view-metadata sixth element),
// the pickled list of storage keys, and each storage as an int64 little-endian element count then its bytes.
inline std::string torch_legacy(const std::string& object_pickle, const std::vector<StorageBytes>& storages,
                                bool little_endian = true) {
  std::string out;
  // 0x1950a86a20f9469cfc6c: LONG1 of 10 bytes.
  out += Pickle().proto(2).op(0x8a).le(10, 1).raw(std::string("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10)).stop().out();
  out += Pickle().proto(2).integer(1001).stop().out();
  Pickle info;
  info.proto(2).empty_dict().mark();
  info.unicode("protocol_version").integer(1001);
  info.unicode("little_endian").boolean(little_endian);
  info.unicode("type_sizes").empty_dict().mark();
  info.unicode("short").integer(2).unicode("int").integer(4).unicode("long").integer(4);
  info.setitems().setitems().stop();
  out += info.out();
  out += object_pickle;
  Pickle keys;
  keys.proto(2).empty_list().mark();
  for (const StorageBytes& s : storages) keys.unicode(s.key);
  keys.appends().stop();
  out += keys.out();
  for (const StorageBytes& s : storages) {
    const uint64_t count = s.bytes.size() / static_cast<std::size_t>(s.element_size);
    for (int i = 0; i < 8; ++i) out += static_cast<char>((count >> (8 * i)) & 0xFF);
    out += s.bytes;
  }
  return out;
}

// The file the tests and the seeds start from: OrderedDict{"w": float32 [2, 2] = 1, 2, 3, 4} in the zip form.
inline std::string small_torch_zip() {
  return torch_zip(state_dict_pickle({TensorSpec{}}), {{"0", floats({1, 2, 3, 4})}});
}

}  // namespace detkit::samples::pt
