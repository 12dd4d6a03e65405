// A data-only reader of Python's pickle format (protocols 0 to 5), enough for PyTorch checkpoints.
//
// What it is: a pickle virtual machine that builds a tree of plain values and never runs anything. A
// reference to a Python callable (GLOBAL, STACK_GLOBAL) becomes a Global value naming it; calling it
// (REDUCE, NEWOBJ, INST, OBJ) becomes an Object holding the callable and its arguments; BUILD attaches
// the state; items set on or appended to an object are kept on it. So a pickled nn.Module tree, an
// OrderedDict with `_metadata`, or torch's `_rebuild_tensor_v2(...)` calls can be walked afterwards by
// code that recognises what it needs (models/pt_file.h) and ignores the rest. `collections.OrderedDict`
// and `builtins.set`/`frozenset` calls become a Dict and a Set, as Python would make them.
//
// Guarantees: any input, however malformed or hostile, either parses or throws PickleError naming the
// byte offset and opcode; it never crashes, recurses on input depth, or allocates more than a small
// multiple of the input size. Values may form cycles through the memo (a list containing itself); the
// arena owns every value, so cycles cannot leak, but walkers must bound their own depth.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace detkit::models::pickle {

// A malformed pickle. `offset` is the position of the failing opcode in the stream.
class PickleError : public std::runtime_error {
 public:
  PickleError(const std::string& what, std::size_t offset) : std::runtime_error(what), offset_(offset) {}
  std::size_t offset() const { return offset_; }

 private:
  std::size_t offset_;
};

enum class Kind {
  None,
  Bool,
  Int,         // fits int64
  BigInt,      // a longer integer: `text` holds its little-endian two's-complement bytes (binary
               // protocols) or its decimal digits (protocol 0's INT / LONG)
  Float,
  String,      // str (UTF-8) in `text`
  Bytes,       // bytes / bytearray / protocol-0 str in `text`
  Tuple,       // `items`
  List,        // `items`
  Dict,        // `entries` in insertion order
  Set,         // `items` (set and frozenset)
  Global,      // a reference to MODULE.NAME: `text` = module, `name` = name
  Object,      // callable(args) or cls.__new__(cls, *args): `callable`, `args`, then `state`, `entries`, `items`
  Persistent,  // a persistent id (how torch refers to tensor storages): `args` is the id value
};

const char* kind_name(Kind kind);

struct Value {
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;  // String, Bytes, BigInt bytes, Global module
  std::string name;  // Global name
  std::vector<Value*> items;
  std::vector<std::pair<Value*, Value*>> entries;
  Value* callable = nullptr;  // Object: the Global (or other value) that was called
  Value* args = nullptr;      // Object: the argument tuple; Persistent: the id
  Value* state = nullptr;     // Object: what BUILD gave it (nullptr when none)

  bool is(Kind k) const { return kind == k; }
  // Global named exactly MODULE.NAME.
  bool is_global(std::string_view module, std::string_view global_name) const {
    return kind == Kind::Global && text == module && name == global_name;
  }
  // The Global this Object was made by (nullptr for other values or a non-Global callable).
  const Value* made_by() const {
    return kind == Kind::Object && callable && callable->kind == Kind::Global ? callable : nullptr;
  }
  // Dict (or Object holding dict items) lookup of a str key; nullptr when absent.
  const Value* get(std::string_view key) const;
};

// The parsed stream. Owns every value.
class Document {
 public:
  const Value* root() const { return root_; }
  std::size_t size() const { return arena_.size(); }

  // For the parser: a new value owned by this document, and the result.
  Value* make(Kind kind) {
    arena_.emplace_back();
    arena_.back().kind = kind;
    return &arena_.back();
  }
  void set_root(Value* root) { root_ = root; }

 private:
  std::deque<Value> arena_;
  Value* root_ = nullptr;
};

// Parses one pickle starting at `data[0]` and ending at its STOP opcode; `consumed` receives the number of
// bytes read (a legacy torch file is several pickles back to back). Throws PickleError.
Document parse(std::string_view data, std::size_t* consumed = nullptr);

// A one-line description of a value for error messages (type and, for Globals, the dotted name).
std::string describe(const Value* value);

}  // namespace detkit::models::pickle
