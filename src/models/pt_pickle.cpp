#include "models/pt_pickle.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "core/text.h"

namespace detkit::models::pickle {

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::BigInt: return "int (long)";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Set: return "set";
    case Kind::Global: return "global";
    case Kind::Object: return "object";
    case Kind::Persistent: return "persistent id";
  }
  return "?";
}

const Value* Value::get(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k && k->kind == Kind::String && k->text == key) return v;
  return nullptr;
}

std::string describe(const Value* value) {
  if (!value) return "nothing";
  if (value->kind == Kind::Global) return cat("global ", value->text, ".", value->name);
  if (const Value* by = value->made_by()) return cat(by->text, ".", by->name, " object");
  if (value->kind == Kind::String) return cat("str '", value->text.substr(0, 60), "'");
  if (value->kind == Kind::Int) return cat("int ", value->integer);
  return kind_name(value->kind);
}

namespace {

// Python 2 module names that protocol 0-2 pickles written by Python 2 (or for it) use.
std::string python3_module(const std::string& module) {
  if (module == "__builtin__") return "builtins";
  if (module == "copy_reg") return "copyreg";
  return module;
}

class Machine {
 public:
  explicit Machine(std::string_view data) : data_(data) {}

  Document run(std::size_t* consumed) {
    while (true) {
      op_at_ = pos_;
      const auto op = static_cast<unsigned char>(byte());
      if (op == '.') break;
      step(op);
    }
    if (stack_.size() != 1 || !marks_.empty())
      fail(cat("STOP with ", stack_.size(), " values on the stack and ", marks_.size(), " open marks"));
    doc_.set_root(stack_.back());
    if (consumed) *consumed = pos_;
    return std::move(doc_);
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    const auto op = op_at_ < data_.size() ? static_cast<unsigned char>(data_[op_at_]) : 0;
    throw PickleError(cat(why, " (opcode 0x", hex_byte(op), " at byte ", op_at_, ")"), op_at_);
  }
  static std::string hex_byte(unsigned char b) {
    const char* digits = "0123456789abcdef";
    return {digits[b >> 4], digits[b & 15]};
  }

  char byte() {
    if (pos_ >= data_.size()) fail("the pickle ends before its STOP opcode");
    return data_[pos_++];
  }
  std::string_view take(uint64_t n) {
    if (n > data_.size() - pos_) fail(cat("a length of ", n, " runs past the end of the data"));
    const std::string_view out = data_.substr(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return out;
  }
  uint64_t le(int bytes) {
    const std::string_view raw = take(static_cast<uint64_t>(bytes));
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(raw[static_cast<std::size_t>(i)]);
    return v;
  }
  std::string_view line() {
    const std::size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos) fail("a text argument has no terminating newline");
    const std::string_view out = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }

  Value* pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("the stack is empty");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("the stack is empty");
    return stack_.back();
  }
  // The values pushed since the last MARK, which is removed.
  std::vector<Value*> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    const std::size_t at = marks_.back();
    marks_.pop_back();
    std::vector<Value*> out(stack_.begin() + static_cast<std::ptrdiff_t>(at), stack_.end());
    stack_.resize(at);
    return out;
  }
  Value* push(Value* v) {
    stack_.push_back(v);
    return v;
  }
  Value* make(Kind kind) { return doc_.make(kind); }
  Value* make_int(int64_t v) {
    Value* out = make(Kind::Int);
    out->integer = v;
    return out;
  }
  Value* make_text(Kind kind, std::string_view text) {
    Value* out = make(kind);
    out->text.assign(text.data(), text.size());
    return out;
  }
  Value* make_seq(Kind kind, std::vector<Value*> items) {
    Value* out = make(kind);
    out->items = std::move(items);
    return out;
  }
  Value* make_global(std::string module, std::string name) {
    Value* g = make(Kind::Global);
    g->text = python3_module(module);
    g->name = std::move(name);
    return g;
  }
  // A little-endian two's-complement integer of any length.
  Value* make_long(std::string_view raw) {
    if (raw.size() <= 8) {
      uint64_t v = 0;
      for (std::size_t i = raw.size(); i-- > 0;) v = (v << 8) | static_cast<unsigned char>(raw[i]);
      if (!raw.empty() && raw.size() < 8 && (static_cast<unsigned char>(raw.back()) & 0x80))
        v |= ~uint64_t{0} << (8 * raw.size());  // sign-extend
      return make_int(static_cast<int64_t>(v));
    }
    return make_text(Kind::BigInt, raw);
  }
  Value* parse_decimal(std::string_view text) {
    std::string t(text);
    if (!t.empty() && t.back() == 'L') t.pop_back();
    if (t == "01") return make_bool(true);  // protocol 0 spells True and False as I01 and I00
    if (t == "00") return make_bool(false);
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(t.c_str(), &end, 10);
    if (t.empty() || *end != '\0') fail(cat("'", t.substr(0, 40), "' is not an integer"));
    if (errno == ERANGE) return make_text(Kind::BigInt, t);  // kept as its decimal text
    return make_int(v);
  }
  Value* make_bool(bool b) {
    Value* out = make(Kind::Bool);
    out->boolean = b;
    return out;
  }
  // A protocol-0 quoted string literal: 'abc' or "abc" with Python escapes.
  Value* parse_quoted(std::string_view text) {
    if (text.size() < 2 || (text.front() != '\'' && text.front() != '"') || text.back() != text.front())
      fail("a STRING argument is not quoted");
    return make_text(Kind::Bytes, unescape(text.substr(1, text.size() - 2), false));
  }
  std::string unescape(std::string_view s, bool unicode) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (unicode && static_cast<unsigned char>(s[i]) >= 0x80) {  // raw-unicode-escape: a latin-1 byte
        append_utf8(out, static_cast<unsigned char>(s[i]));
        continue;
      }
      if (s[i] != '\\' || i + 1 >= s.size()) {
        out += s[i];
        continue;
      }
      const char e = s[++i];
      const auto hex = [&](std::size_t n) {
        uint32_t v = 0;
        for (std::size_t k = 1; k <= n; ++k) {
          if (i + k >= s.size()) fail("a truncated escape in a text string");
          const char c = s[i + k];
          v <<= 4;
          if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
          else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
          else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
          else fail("a bad hex digit in a text escape");
        }
        i += n;
        return v;
      };
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'x': {
          const uint32_t v = hex(2);
          if (unicode) append_utf8(out, v);
          else out += static_cast<char>(v);
          break;
        }
        case 'u': append_utf8(out, hex(4)); break;
        case 'U': append_utf8(out, hex(8)); break;
        default: out += '\\'; out += e;
      }
    }
    return out;
  }
  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  // Python 2-compatible bytes in protocol 2: _codecs.encode(str, 'latin1'). Code points above 255 are
  // not latin-1: the call is kept as an object then.
  static bool latin1_bytes(const std::string& utf8, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < utf8.size(); ++i) {
      const auto c = static_cast<unsigned char>(utf8[i]);
      if (c < 0x80) out += static_cast<char>(c);
      else if ((c & 0xE0) == 0xC0 && i + 1 < utf8.size()) {
        const uint32_t cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(utf8[++i]) & 0x3Fu);
        if (cp > 0xFF) return false;
        out += static_cast<char>(cp);
      } else {
        return false;
      }
    }
    return true;
  }

  // Values copied from earlier ones (a memoized value can be copied any number of times): bounded by the
  // input's size, so no input allocates more than a fixed multiple of itself.
  void charge(std::size_t bytes) {
    copied_ += bytes;
    if (copied_ > 16 * data_.size() + (std::size_t{1} << 20)) fail("the pickle copies its values more than its size allows");
  }

  Value* memo_get(uint64_t key) {
    const auto it = memo_.find(key);
    if (it == memo_.end()) fail(cat("memo entry ", key, " is read before it is written"));
    return it->second;
  }
  void memo_put(uint64_t key) { memo_[key] = top(); }

  // callable(*args) as Python would run it, for the few callables that make plain containers; every
  // other call becomes an Object.
  Value* call(Value* callable, Value* args) {
    if (callable->kind == Kind::Global) {
      const std::string& m = callable->text;
      const std::string& n = callable->name;
      const bool no_args = args->kind == Kind::Tuple && args->items.empty();
      const Value* first = args->kind == Kind::Tuple && args->items.size() == 1 ? args->items[0] : nullptr;
      if (m == "collections" && n == "OrderedDict") {
        Value* d = make(Kind::Dict);
        if (first && first->kind == Kind::List) charge(first->items.size() * sizeof(d->entries[0]));
        if (first && first->kind == Kind::List)
          for (Value* pair : first->items)
            if (pair->kind == Kind::Tuple && pair->items.size() == 2) set_item(d, pair->items[0], pair->items[1]);
        if (no_args || first) return d;
      }
      if (m == "builtins" && (n == "set" || n == "frozenset")) {
        if (no_args) return make(Kind::Set);
        if (first && (first->kind == Kind::List || first->kind == Kind::Tuple)) {
          charge(first->items.size() * sizeof(Value*));
          return make_seq(Kind::Set, first->items);
        }
      }
      if (m == "_codecs" && n == "encode" && args->kind == Kind::Tuple && args->items.size() == 2 &&
          args->items[0]->kind == Kind::String) {
        charge(args->items[0]->text.size());
        std::string raw;
        if (latin1_bytes(args->items[0]->text, raw)) return make_text(Kind::Bytes, raw);
      }
      if (m == "builtins" && n == "bytearray" && first && first->kind == Kind::Bytes) {
        charge(first->text.size());
        return make_text(Kind::Bytes, first->text);
      }
      // copyreg._reconstructor(cls, base, state): how protocols 0 and 1 make an instance of cls.
      if (m == "copyreg" && n == "_reconstructor" && args->kind == Kind::Tuple && !args->items.empty()) {
        Value* obj = make(Kind::Object);
        obj->callable = args->items[0];
        obj->args = make(Kind::Tuple);
        return obj;
      }
    }
    Value* obj = make(Kind::Object);
    obj->callable = callable;
    obj->args = args;
    return obj;
  }

  void set_item(Value* target, Value* key, Value* value) {
    if (target->kind != Kind::Dict && target->kind != Kind::Object)
      fail(cat("SETITEM on a ", kind_name(target->kind), ", not a dict"));
    // A repeated key replaces the value, as in Python (keys compared by str or int value, else identity).
    std::string k;
    if (key->kind == Kind::String) k = "s" + key->text;
    else if (key->kind == Kind::Int) k = "i" + std::to_string(key->integer);
    else k = "p" + std::to_string(reinterpret_cast<std::uintptr_t>(key));
    auto& index = key_index_[target];
    const auto [it, fresh] = index.emplace(std::move(k), target->entries.size());
    if (!fresh && it->second < target->entries.size()) {
      target->entries[it->second].second = value;
      return;
    }
    target->entries.emplace_back(key, value);
  }
  void append(Value* target, const std::vector<Value*>& values) {
    if (target->kind != Kind::List && target->kind != Kind::Object)
      fail(cat("APPEND on a ", kind_name(target->kind), ", not a list"));
    target->items.insert(target->items.end(), values.begin(), values.end());
  }

  void step(unsigned char op) {
    switch (op) {
      case 0x80: {  // PROTO
        const auto proto = static_cast<unsigned char>(byte());
        if (proto > 5) fail(cat("pickle protocol ", static_cast<int>(proto), " is newer than 5"));
        break;
      }
      case 0x95: take(8); break;  // FRAME: the frame's length; its contents follow inline
      case '(': marks_.push_back(stack_.size()); break;
      case '0':  // POP: a MARK on top of the stack is what it removes (protocol 0's recursive tuples rely on it)
        if (!marks_.empty() && marks_.back() == stack_.size()) marks_.pop_back();
        else pop();
        break;
      case '1': pop_mark(); break;
      case '2': push(top()); break;
      case 'N': push(make(Kind::None)); break;
      case 0x88: push(make_bool(true)); break;
      case 0x89: push(make_bool(false)); break;
      case 'I': push(parse_decimal(line())); break;
      case 'L': push(parse_decimal(line())); break;
      case 'J': push(make_int(static_cast<int32_t>(static_cast<uint32_t>(le(4))))); break;
      case 'K': push(make_int(static_cast<int64_t>(le(1)))); break;
      case 'M': push(make_int(static_cast<int64_t>(le(2)))); break;
      case 0x8a: push(make_long(take(le(1)))); break;
      case 0x8b: {
        const auto n = static_cast<int32_t>(static_cast<uint32_t>(le(4)));
        if (n < 0) fail("LONG4 with a negative length");
        push(make_long(take(static_cast<uint64_t>(n))));
        break;
      }
      case 'F': {
        const std::string text(line());
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0') fail(cat("'", text.substr(0, 40), "' is not a float"));
        Value* f = make(Kind::Float);
        f->real = v;
        push(f);
        break;
      }
      case 'G': {
        const uint64_t bits = [&] {  // big-endian IEEE double
          const std::string_view raw = take(8);
          uint64_t b = 0;
          for (char c : raw) b = (b << 8) | static_cast<unsigned char>(c);
          return b;
        }();
        Value* f = make(Kind::Float);
        std::memcpy(&f->real, &bits, sizeof bits);
        push(f);
        break;
      }
      case 'S': push(parse_quoted(line())); break;
      case 'T': {
        const auto n = static_cast<int32_t>(static_cast<uint32_t>(le(4)));
        if (n < 0) fail("BINSTRING with a negative length");
        push(make_text(Kind::Bytes, take(static_cast<uint64_t>(n))));
        break;
      }
      case 'U': push(make_text(Kind::Bytes, take(le(1)))); break;
      case 'V': push(make_text(Kind::String, unescape(line(), true))); break;
      case 'X': push(make_text(Kind::String, take(le(4)))); break;
      case 0x8c: push(make_text(Kind::String, take(le(1)))); break;
      case 0x8d: push(make_text(Kind::String, take(le(8)))); break;
      case 'B': push(make_text(Kind::Bytes, take(le(4)))); break;
      case 'C': push(make_text(Kind::Bytes, take(le(1)))); break;
      case 0x8e: push(make_text(Kind::Bytes, take(le(8)))); break;
      case 0x96: push(make_text(Kind::Bytes, take(le(8)))); break;
      case 0x97:
      case 0x98: fail("out-of-band buffers (pickle protocol 5 NEXT_BUFFER) are not used by checkpoints");
      case ')': push(make(Kind::Tuple)); break;
      case 't': push(make_seq(Kind::Tuple, pop_mark())); break;
      case 0x85: {
        Value* a = pop();
        push(make_seq(Kind::Tuple, {a}));
        break;
      }
      case 0x86: {
        Value* b = pop();
        Value* a = pop();
        push(make_seq(Kind::Tuple, {a, b}));
        break;
      }
      case 0x87: {
        Value* c = pop();
        Value* b = pop();
        Value* a = pop();
        push(make_seq(Kind::Tuple, {a, b, c}));
        break;
      }
      case ']': push(make(Kind::List)); break;
      case 'l': push(make_seq(Kind::List, pop_mark())); break;
      case 'a': {
        Value* v = pop();
        append(top(), {v});
        break;
      }
      case 'e': {
        const std::vector<Value*> values = pop_mark();
        append(top(), values);
        break;
      }
      case '}': push(make(Kind::Dict)); break;
      case 'd': {
        const std::vector<Value*> kv = pop_mark();
        if (kv.size() % 2) fail("DICT with an odd number of keys and values");
        Value* d = make(Kind::Dict);
        for (std::size_t i = 0; i < kv.size(); i += 2) set_item(d, kv[i], kv[i + 1]);
        push(d);
        break;
      }
      case 's': {
        Value* v = pop();
        Value* k = pop();
        set_item(top(), k, v);
        break;
      }
      case 'u': {
        const std::vector<Value*> kv = pop_mark();
        if (kv.size() % 2) fail("SETITEMS with an odd number of keys and values");
        Value* target = top();
        for (std::size_t i = 0; i < kv.size(); i += 2) set_item(target, kv[i], kv[i + 1]);
        break;
      }
      case 0x8f: push(make(Kind::Set)); break;
      case 0x90: {
        const std::vector<Value*> values = pop_mark();
        Value* target = top();
        if (target->kind != Kind::Set && target->kind != Kind::Object) fail(cat("ADDITEMS on a ", kind_name(target->kind)));
        target->items.insert(target->items.end(), values.begin(), values.end());
        break;
      }
      case 0x91: push(make_seq(Kind::Set, pop_mark())); break;
      case 'c': {
        std::string module(line());
        std::string name(line());
        push(make_global(std::move(module), std::move(name)));
        break;
      }
      case 0x93: {
        Value* name = pop();
        Value* module = pop();
        if (module->kind != Kind::String || name->kind != Kind::String) fail("STACK_GLOBAL needs two strings");
        charge(module->text.size() + name->text.size());
        push(make_global(module->text, name->text));
        break;
      }
      case 'R': {
        Value* args = pop();
        Value* callable = pop();
        if (args->kind != Kind::Tuple) fail(cat("REDUCE with ", kind_name(args->kind), " arguments, not a tuple"));
        push(call(callable, args));
        break;
      }
      case 0x81: {
        Value* args = pop();
        Value* cls = pop();
        if (args->kind != Kind::Tuple) fail("NEWOBJ with arguments that are not a tuple");
        Value* obj = make(Kind::Object);
        obj->callable = cls;
        obj->args = args;
        push(obj);
        break;
      }
      case 0x92: {
        pop();  // keyword arguments: not needed to walk the value
        Value* args = pop();
        Value* cls = pop();
        Value* obj = make(Kind::Object);
        obj->callable = cls;
        obj->args = args;
        push(obj);
        break;
      }
      case 'i': {
        std::string module(line());
        std::string name(line());
        Value* obj = make(Kind::Object);
        obj->callable = make_global(std::move(module), std::move(name));
        obj->args = make_seq(Kind::Tuple, pop_mark());
        push(obj);
        break;
      }
      case 'o': {
        std::vector<Value*> values = pop_mark();
        if (values.empty()) fail("OBJ without a class");
        Value* obj = make(Kind::Object);
        obj->callable = values.front();
        obj->args = make_seq(Kind::Tuple, std::vector<Value*>(values.begin() + 1, values.end()));
        push(obj);
        break;
      }
      case 'b': {
        Value* state = pop();
        top()->state = state;
        break;
      }
      case 'P': {
        Value* id = make(Kind::Persistent);
        id->args = make_text(Kind::String, line());
        push(id);
        break;
      }
      case 'Q': {
        Value* id = make(Kind::Persistent);
        id->args = pop();
        push(id);
        break;
      }
      case 'p': {
        const std::string text(line());
        char* end = nullptr;
        const unsigned long long key = std::strtoull(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0') fail("PUT with a key that is not a number");
        memo_put(key);
        break;
      }
      case 'q': memo_put(le(1)); break;
      case 'r': memo_put(le(4)); break;
      case 0x94: memo_put(memo_.size()); break;
      case 'g': {
        const std::string text(line());
        char* end = nullptr;
        const unsigned long long key = std::strtoull(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0') fail("GET with a key that is not a number");
        push(memo_get(key));
        break;
      }
      case 'h': push(memo_get(le(1))); break;
      case 'j': push(memo_get(le(4))); break;
      case 0x82:
      case 0x83:
      case 0x84: fail("extension-registry references (EXT1/2/4) are not used by checkpoints");
      default: fail("an unknown opcode");
    }
  }

  std::string_view data_;
  std::size_t pos_ = 0, op_at_ = 0;
  Document doc_;
  std::vector<Value*> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  std::size_t copied_ = 0;
  // Per dict: where each str / int key is, so SETITEMS finds a repeated key without a linear search.
  std::unordered_map<const Value*, std::unordered_map<std::string, std::size_t>> key_index_;
};

}  // namespace

Document parse(std::string_view data, std::size_t* consumed) { return Machine(data).run(consumed); }

}  // namespace detkit::models::pickle
