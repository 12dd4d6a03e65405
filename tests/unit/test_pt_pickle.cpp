// The data-only pickle reader (models/pt_pickle.h) on hand-built opcode streams, and the PyTorch checkpoint
// reader (models/pt_file.h) on hand-built zip and legacy files (pt_samples.h): every opcode family, memo
// cycles, deep nesting, and every way a stream or a file can be malformed, truncated or tampered with.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/text.h"
#include "models/pt_file.h"
#include "models/pt_pickle.h"
#include "pt_samples.h"
#include "test_util.h"

// Allocation accounting for this test binary: the bytes requested from operator new since the last reset,
// and a budget past which operator new throws std::bad_alloc. Shows that hostile lengths are refused
// before anything is allocated for them, and that no input makes the reader allocate far more than its
// size (the budget stops a runaway input before it exhausts the machine). Replacing the global operator
// new is allowed by the standard and affects this test binary only.
namespace {
std::atomic<std::size_t> g_allocated{0};
std::atomic<std::size_t> g_budget{std::numeric_limits<std::size_t>::max()};
}  // namespace

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  const std::size_t total = g_allocated.fetch_add(n, std::memory_order_relaxed) + n;
  if (total > g_budget.load(std::memory_order_relaxed)) throw std::bad_alloc();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace detkit;
namespace pickle = detkit::models::pickle;
namespace ptfile = detkit::models::ptfile;
namespace pt = detkit::samples::pt;
using pickle::Kind;
using pickle::Value;

namespace {

// Resets the allocation count and caps what may be allocated until the end of the scope.
class AllocationBudget {
 public:
  explicit AllocationBudget(std::size_t bytes) {
    g_allocated = 0;
    g_budget = bytes;
  }
  ~AllocationBudget() { g_budget = std::numeric_limits<std::size_t>::max(); }
  std::size_t used() const { return g_allocated.load(); }
};

// A byte string from a literal that may hold NUL bytes.
template <std::size_t N>
std::string B(const char (&s)[N]) {
  return std::string(s, N - 1);
}

pickle::Document parse(const std::string& bytes) { return pickle::parse(bytes); }

constexpr std::size_t kAnyOffset = std::numeric_limits<std::size_t>::max();

// Parsing `bytes` throws PickleError whose message holds `needle` and names its offset (`offset` unless
// kAnyOffset), and nothing else.
::testing::AssertionResult FailsWith(const std::string& bytes, const std::string& needle, std::size_t offset = kAnyOffset) {
  try {
    pickle::parse(bytes);
  } catch (const pickle::PickleError& e) {
    const std::string what = e.what();
    if (what.find(needle) == std::string::npos)
      return ::testing::AssertionFailure() << "message \"" << what << "\" lacks \"" << needle << "\"";
    if (what.find(cat("at byte ", e.offset())) == std::string::npos)
      return ::testing::AssertionFailure() << "message \"" << what << "\" does not name its offset " << e.offset();
    if (offset != kAnyOffset && e.offset() != offset)
      return ::testing::AssertionFailure() << "offset " << e.offset() << ", expected " << offset << " (" << what << ")";
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "another exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "parsed without error";
}

void expect_int(const Value* v, int64_t expected) {
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(v->kind, Kind::Int) << pickle::describe(v);
  EXPECT_EQ(v->integer, expected);
}

void expect_text(const Value* v, Kind kind, const std::string& expected) {
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(v->kind, kind) << pickle::describe(v);
  EXPECT_EQ(v->text, expected);
}

// A stream that uses most protocol-2 opcodes: the state dict torch.save pickles and a tail of others, all in
// one tuple.
std::string rich_protocol2_stream() {
  const std::string sd = pt::state_dict_pickle({pt::TensorSpec{}});
  pt::Pickle p;
  p.proto(2).mark().raw(sd.substr(2, sd.size() - 3));  // without its PROTO and STOP (memo entries 0 to 2)
  p.integer(-5).integer(70000).integer(int64_t{1} << 40).real(0.25).binbytes("xy");
  p.op(0x8f).mark().integer(1).op(0x90);                                  // EMPTY_SET, ADDITEMS
  p.unicode("mod").unicode("name").op(0x93).tuple(0).op(0x81).op(0x94);   // STACK_GLOBAL, NEWOBJ, MEMOIZE (3)
  p.binget(3).tuple(3);
  p.op(0x8d).le(2, 8).raw("ab").op(0x8e).le(1, 8).raw("z").op(0x96).le(0, 8).boolean(false).boolean(true);
  p.tuple_from_mark().stop();
  return p.out();
}

}  // namespace

// ------------------------------------------------------------------------------------- protocol 0 text

TEST(PicklePlain, Protocol0Integers) {
  expect_int(parse(B("I42\n.")).root(), 42);
  expect_int(parse(B("I-7\n.")).root(), -7);
  expect_int(parse(B("L5L\n.")).root(), 5);
  expect_int(parse(B("L-9223372036854775808L\n.")).root(), std::numeric_limits<int64_t>::min());
  // Protocol 0 spells True and False as I01 and I00.
  const auto t = parse(B("I01\n."));
  ASSERT_EQ(t.root()->kind, Kind::Bool);
  EXPECT_TRUE(t.root()->boolean);
  const auto f = parse(B("I00\n."));
  ASSERT_EQ(f.root()->kind, Kind::Bool);
  EXPECT_FALSE(f.root()->boolean);
  // Past int64: kept as a BigInt.
  EXPECT_EQ(parse(B("L123456789012345678901234567890L\n.")).root()->kind, Kind::BigInt);
}

TEST(PicklePlain, Protocol0FloatStringUnicode) {
  const auto f = parse(B("F-2.25e3\n."));
  ASSERT_EQ(f.root()->kind, Kind::Float);
  EXPECT_DOUBLE_EQ(f.root()->real, -2250.0);
  // STRING: a quoted Python literal with escapes; bytes.
  expect_text(parse(B("S'ab\\ncd'\n.")).root(), Kind::Bytes, "ab\ncd");
  expect_text(parse(B("S\"q\\x41\\'\"\n.")).root(), Kind::Bytes, "qA'");
  // UNICODE: raw-unicode-escape text; str in UTF-8.
  expect_text(parse(B("Vcaf\\u00e9 \\U0001f600\n.")).root(), Kind::String, "caf\xc3\xa9 \xf0\x9f\x98\x80");
  expect_text(parse(B("V\n.")).root(), Kind::String, "");
}

// raw-unicode-escape (what protocol 0 writes for str) stores code points 0x80..0xFF as single latin-1 bytes:
// Python's pickle.dumps('café', 0) is b'Vcaf\xe9\np0\n.'. The value must still be UTF-8.
TEST(PicklePlain, Protocol0UnicodeLatin1BytesBecomeUtf8) {
  expect_text(parse(B("Vcaf\xe9\np0\n.")).root(), Kind::String, "caf\xc3\xa9");
}

TEST(PicklePlain, Protocol0Containers) {
  const auto list = parse(B("(I1\nI2\nl."));
  ASSERT_EQ(list.root()->kind, Kind::List);
  ASSERT_EQ(list.root()->items.size(), 2u);
  expect_int(list.root()->items[1], 2);

  // As Python's protocol 0 writes a list: MARK LIST, PUT, then one APPEND per item.
  const auto appended = parse(B("(lp0\nI1\naI2\na."));
  ASSERT_EQ(appended.root()->kind, Kind::List);
  ASSERT_EQ(appended.root()->items.size(), 2u);
  expect_int(appended.root()->items[0], 1);

  const auto tuple = parse(B("(I1\nVx\nt."));
  ASSERT_EQ(tuple.root()->kind, Kind::Tuple);
  ASSERT_EQ(tuple.root()->items.size(), 2u);
  expect_text(tuple.root()->items[1], Kind::String, "x");
  EXPECT_TRUE(parse(B("(t.")).root()->items.empty());

  const auto dict = parse(B("(Va\nI1\nVb\nI2\nd."));
  ASSERT_EQ(dict.root()->kind, Kind::Dict);
  expect_int(dict.root()->get("a"), 1);
  expect_int(dict.root()->get("b"), 2);
  EXPECT_EQ(dict.root()->get("c"), nullptr);
  // A repeated key replaces the value, as in Python.
  const auto repeated = parse(B("(Va\nI1\nVa\nI2\nd."));
  ASSERT_EQ(repeated.root()->entries.size(), 1u);
  expect_int(repeated.root()->get("a"), 2);
}

TEST(PicklePlain, Protocol0MemoPutAndGet) {
  // (1, 2) memoized, popped, and read back.
  const auto doc = parse(B("(I1\nI2\ntp0\n0g0\n."));
  ASSERT_EQ(doc.root()->kind, Kind::Tuple);
  EXPECT_EQ(doc.root()->items.size(), 2u);
  // The same value twice: one object, two references.
  const auto twice = parse(B("(I7\np0\n0g0\ng0\nt."));
  ASSERT_EQ(twice.root()->items.size(), 2u);
  EXPECT_EQ(twice.root()->items[0], twice.root()->items[1]);
  expect_int(twice.root()->items[0], 7);
}

TEST(PicklePlain, Protocol0InstObjAndPersid) {
  const auto inst = parse(B("(I1\nI2\nimymod\nThing\n."));
  ASSERT_NE(inst.root()->made_by(), nullptr);
  EXPECT_TRUE(inst.root()->made_by()->is_global("mymod", "Thing"));
  ASSERT_EQ(inst.root()->args->kind, Kind::Tuple);
  ASSERT_EQ(inst.root()->args->items.size(), 2u);
  expect_int(inst.root()->args->items[0], 1);

  const auto obj = parse(B("(cmymod\nThing\nI3\no."));
  ASSERT_NE(obj.root()->made_by(), nullptr);
  EXPECT_TRUE(obj.root()->made_by()->is_global("mymod", "Thing"));
  ASSERT_EQ(obj.root()->args->items.size(), 1u);
  expect_int(obj.root()->args->items[0], 3);
  EXPECT_EQ(pickle::describe(obj.root()), "mymod.Thing object");

  const auto pid = parse(B("Pstorage0\n."));
  ASSERT_EQ(pid.root()->kind, Kind::Persistent);
  expect_text(pid.root()->args, Kind::String, "storage0");
}

TEST(PicklePlain, Protocol0PythonTwoNamesAndReconstructor) {
  // __builtin__.set([1, 2]) -> a Set.
  const auto set = parse(B("c__builtin__\nset\n((I1\nI2\nltR."));
  ASSERT_EQ(set.root()->kind, Kind::Set);
  EXPECT_EQ(set.root()->items.size(), 2u);
  // copy_reg._reconstructor(mymod.Thing, object, None) then BUILD {'a': 1}: an instance of mymod.Thing.
  const auto obj = parse(B("ccopy_reg\n_reconstructor\n(cmymod\nThing\nc__builtin__\nobject\nNtR(dVa\nI1\nsb."));
  ASSERT_NE(obj.root()->made_by(), nullptr);
  EXPECT_TRUE(obj.root()->made_by()->is_global("mymod", "Thing"));
  ASSERT_NE(obj.root()->args, nullptr);
  EXPECT_TRUE(obj.root()->args->items.empty());
  ASSERT_NE(obj.root()->state, nullptr);
  expect_int(obj.root()->state->get("a"), 1);
  // The Python 2 module name is mapped to Python 3's.
  EXPECT_TRUE(parse(B("ccopy_reg\n_reconstructor\n.")).root()->is_global("copyreg", "_reconstructor"));
}

TEST(PicklePlain, StackManipulation) {
  const auto dup = parse(B("(I5\n2t."));  // DUP
  ASSERT_EQ(dup.root()->items.size(), 2u);
  EXPECT_EQ(dup.root()->items[0], dup.root()->items[1]);
  expect_int(parse(B("I9\nI8\n0.")).root(), 9);         // POP
  expect_int(parse(B("I9\n(I1\nI2\n1.")).root(), 9);    // POP_MARK
}

// Python's POP removes a MARK when the MARK is on top, and protocol 0 relies on it: a tuple that contains
// itself is written MARK, items, then POP * (n + 1) and a GET. This is pickle.dumps(t, 0) for
// a = []; t = (a,); a.append(t).
TEST(PicklePlain, Protocol0RecursiveTuplePopsItsMark) {
  const auto doc = parse(B("((lp0\n(g0\ntp1\na00g1\n."));
  const Value* t = doc.root();
  ASSERT_EQ(t->kind, Kind::Tuple);
  ASSERT_EQ(t->items.size(), 1u);
  ASSERT_EQ(t->items[0]->kind, Kind::List);
  ASSERT_EQ(t->items[0]->items.size(), 1u);
  EXPECT_EQ(t->items[0]->items[0], t);
}

// ----------------------------------------------------------------------------------- protocol 2 and up

TEST(PickleBinary, Integers) {
  expect_int(parse(B("\x80\x02K\xff.")).root(), 255);                 // BININT1
  expect_int(parse(B("\x80\x02M\xff\xff.")).root(), 65535);           // BININT2
  expect_int(parse(B("\x80\x02J\xfb\xff\xff\xff.")).root(), -5);      // BININT
  // LONG1: little-endian two's complement of any length.
  expect_int(parse(B("\x80\x02\x8a\x00.")).root(), 0);
  expect_int(parse(B("\x80\x02\x8a\x01\xff.")).root(), -1);
  expect_int(parse(B("\x80\x02\x8a\x02\x00\x80.")).root(), -32768);
  expect_int(parse(B("\x80\x02\x8a\x03\x00\x00\x80.")).root(), -(int64_t{1} << 23));
  expect_int(parse(B("\x80\x02\x8a\x05\x00\x00\x00\x00\x01.")).root(), int64_t{1} << 32);
  expect_int(parse(B("\x80\x02\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f.")).root(), std::numeric_limits<int64_t>::max());
  expect_int(parse(B("\x80\x02\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.")).root(), std::numeric_limits<int64_t>::min());
  // Longer than 8 bytes: a BigInt holding the bytes (2**63 and -2**64).
  expect_text(parse(B("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.")).root(), Kind::BigInt,
              B("\x00\x00\x00\x00\x00\x00\x00\x80\x00"));
  expect_text(parse(B("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xff.")).root(), Kind::BigInt,
              B("\x00\x00\x00\x00\x00\x00\x00\x00\xff"));
  // LONG4.
  expect_int(parse(B("\x80\x02\x8b\x02\x00\x00\x00\xff\x7f.")).root(), 32767);
  expect_int(parse(B("\x80\x02\x8b\x01\x00\x00\x00\x80.")).root(), -128);
  expect_text(parse(B("\x80\x02\x8b\x0a\x00\x00\x00\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.")).root(), Kind::BigInt,
              B("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"));
  // The builder's choice of opcode round-trips.
  for (const int64_t v : {int64_t{0}, int64_t{300}, int64_t{-1}, int64_t{1} << 31, -(int64_t{1} << 40),
                          std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()})
    expect_int(parse(pt::Pickle().proto(2).integer(v).stop().out()).root(), v);
}

TEST(PickleBinary, BoolsNoneAndFloats) {
  const auto t = parse(B("\x80\x02\x88."));
  ASSERT_EQ(t.root()->kind, Kind::Bool);
  EXPECT_TRUE(t.root()->boolean);
  const auto f = parse(B("\x80\x02\x89."));
  ASSERT_EQ(f.root()->kind, Kind::Bool);
  EXPECT_FALSE(f.root()->boolean);
  EXPECT_EQ(parse(B("\x80\x02N.")).root()->kind, Kind::None);
  const auto g = parse(pt::Pickle().proto(2).real(-0.1).stop().out());
  ASSERT_EQ(g.root()->kind, Kind::Float);
  EXPECT_EQ(g.root()->real, -0.1);
}

TEST(PickleBinary, StringsAndBytes) {
  expect_text(parse(B("\x80\x02X\x03\x00\x00\x00" "abc.")).root(), Kind::String, "abc");                 // BINUNICODE
  expect_text(parse(B("\x80\x02\x8c\x02\xc3\xa9.")).root(), Kind::String, "\xc3\xa9");                // SHORT_BINUNICODE
  expect_text(parse(B("\x80\x04\x8d\x03\x00\x00\x00\x00\x00\x00\x00" "a\0b.")).root(), Kind::String, B("a\0b"));  // BINUNICODE8
  expect_text(parse(B("\x80\x03" "B\x02\x00\x00\x00\xff\x00.")).root(), Kind::Bytes, B("\xff\x00"));     // BINBYTES
  expect_text(parse(B("\x80\x03" "C\x01z.")).root(), Kind::Bytes, "z");                                   // SHORT_BINBYTES
  expect_text(parse(B("\x80\x04\x8e\x01\x00\x00\x00\x00\x00\x00\x00q.")).root(), Kind::Bytes, "q");   // BINBYTES8
  expect_text(parse(B("\x80\x05\x96\x02\x00\x00\x00\x00\x00\x00\x00hi.")).root(), Kind::Bytes, "hi");  // BYTEARRAY8
  expect_text(parse(B("\x80\x02T\x02\x00\x00\x00ok.")).root(), Kind::Bytes, "ok");                    // BINSTRING
  expect_text(parse(B("\x80\x02U\x00.")).root(), Kind::Bytes, "");                                     // SHORT_BINSTRING
  // A long str goes through BINUNICODE.
  const std::string big(1000, 'x');
  expect_text(parse(pt::Pickle().proto(2).unicode(big).stop().out()).root(), Kind::String, big);
}

TEST(PickleBinary, TuplesListsDicts) {
  EXPECT_TRUE(parse(B("\x80\x02).")).root()->items.empty());
  EXPECT_EQ(parse(B("\x80\x02K\x01\x85.")).root()->items.size(), 1u);
  const auto pair = parse(B("\x80\x02K\x01K\x02\x86."));
  ASSERT_EQ(pair.root()->items.size(), 2u);
  expect_int(pair.root()->items[0], 1);
  expect_int(pair.root()->items[1], 2);
  const auto triple = parse(B("\x80\x02K\x01K\x02K\x03\x87."));
  ASSERT_EQ(triple.root()->kind, Kind::Tuple);
  ASSERT_EQ(triple.root()->items.size(), 3u);
  expect_int(triple.root()->items[2], 3);

  const auto list = parse(B("\x80\x02]q\x00(K\x01K\x02" "eK\x03" "a."));  // EMPTY_LIST, APPENDS, APPEND
  ASSERT_EQ(list.root()->kind, Kind::List);
  ASSERT_EQ(list.root()->items.size(), 3u);
  expect_int(list.root()->items[2], 3);

  const auto dict = parse(B("\x80\x02}(\x8c\x01" "aK\x01\x8c\x01" "bK\x02u\x8c\x01" "cK\x03s."));  // SETITEMS, SETITEM
  ASSERT_EQ(dict.root()->kind, Kind::Dict);
  ASSERT_EQ(dict.root()->entries.size(), 3u);
  expect_int(dict.root()->get("c"), 3);
  EXPECT_EQ(dict.root()->entries[0].first->text, "a");  // insertion order
}

TEST(PickleBinary, Sets) {
  const auto set = parse(B("\x80\x04\x8f(K\x01K\x02\x90(K\x03\x90."));  // EMPTY_SET, ADDITEMS
  ASSERT_EQ(set.root()->kind, Kind::Set);
  EXPECT_EQ(set.root()->items.size(), 3u);
  const auto frozen = parse(B("\x80\x04(K\x01K\x02\x91."));  // FROZENSET
  ASSERT_EQ(frozen.root()->kind, Kind::Set);
  EXPECT_EQ(frozen.root()->items.size(), 2u);
  // builtins.set() and builtins.frozenset([..]) by REDUCE.
  const auto empty = parse(B("\x80\x02" "c__builtin__\nset\n)R."));
  ASSERT_EQ(empty.root()->kind, Kind::Set);
  EXPECT_TRUE(empty.root()->items.empty());
  const auto called = parse(B("\x80\x02" "cbuiltins\nfrozenset\n]K\x07" "a\x85R."));
  ASSERT_EQ(called.root()->kind, Kind::Set);
  ASSERT_EQ(called.root()->items.size(), 1u);
  expect_int(called.root()->items[0], 7);
}

TEST(PickleBinary, GlobalsAndMemo) {
  // STACK_GLOBAL with MEMOIZE, as protocol 4 writes it.
  const auto doc = parse(B("\x80\x04\x95\x1b\x00\x00\x00\x00\x00\x00\x00\x8c\x05torch\x94\x8c\x0c" "FloatStorage\x94\x93\x94."));
  EXPECT_TRUE(doc.root()->is_global("torch", "FloatStorage"));
  EXPECT_EQ(pickle::describe(doc.root()), "global torch.FloatStorage");
  // MEMOIZE numbers entries from 0: the module is 0, the name 1, the global 2.
  const auto memo = parse(B("\x80\x04\x8c\x01m\x94\x8c\x01n\x94\x93\x94\x30h\x02h\x00\x86."));
  ASSERT_EQ(memo.root()->items.size(), 2u);
  EXPECT_TRUE(memo.root()->items[0]->is_global("m", "n"));
  expect_text(memo.root()->items[1], Kind::String, "m");
  // LONG_BINPUT / LONG_BINGET with a 4-byte key.
  const auto wide = parse(B("\x80\x02K\x2ar\x10\x27\x00\x00j\x10\x27\x00\x00\x86."));
  ASSERT_EQ(wide.root()->items.size(), 2u);
  EXPECT_EQ(wide.root()->items[0], wide.root()->items[1]);
}

TEST(PickleBinary, FrameIsTransparent) {
  pt::Pickle inner;
  inner.unicode("abc").integer(3).tuple(2);
  pt::Pickle p;
  p.proto(4).op(0x95).le(inner.out().size() + 1, 8).raw(inner.out()).stop();
  const auto doc = parse(p.out());
  ASSERT_EQ(doc.root()->kind, Kind::Tuple);
  ASSERT_EQ(doc.root()->items.size(), 2u);
  expect_text(doc.root()->items[0], Kind::String, "abc");
}

TEST(PickleBinary, NewobjBuildAndDictSubclassItems) {
  // mymod.Thing.__new__(mymod.Thing) with BUILD state {'a': 1}.
  const auto obj = parse(B("\x80\x02" "cmymod\nThing\nq\x00)\x81q\x01}(\x8c\x01" "aK\x01ub."));
  const Value* o = obj.root();
  ASSERT_EQ(o->kind, Kind::Object);
  ASSERT_NE(o->made_by(), nullptr);
  EXPECT_TRUE(o->made_by()->is_global("mymod", "Thing"));
  ASSERT_NE(o->args, nullptr);
  EXPECT_TRUE(o->args->items.empty());
  ASSERT_NE(o->state, nullptr);
  expect_int(o->state->get("a"), 1);
  // A dict subclass and a list subclass keep their items on the object.
  const auto sub = parse(B("\x80\x02" "cmymod\nMyDict\n)\x81(\x8c\x01kK\x05u."));
  expect_int(sub.root()->get("k"), 5);
  const auto lsub = parse(B("\x80\x02" "cmymod\nMyList\n)\x81(K\x05K\x06" "e."));
  EXPECT_EQ(lsub.root()->items.size(), 2u);
  // NEWOBJ_EX: cls, args, kwargs.
  const auto ex = parse(B("\x80\x04" "cmymod\nThing\n)}\x92."));
  ASSERT_NE(ex.root()->made_by(), nullptr);
  EXPECT_TRUE(ex.root()->made_by()->is_global("mymod", "Thing"));
}

TEST(PickleBinary, BinpersidKeepsTheIdValue) {
  const auto doc = parse(B("\x80\x02(\x8c\x07storagectorch\nFloatStorage\n\x8c\x01" "0\x8c\x03" "cpuK\x04tQ."));
  ASSERT_EQ(doc.root()->kind, Kind::Persistent);
  const Value* id = doc.root()->args;
  ASSERT_EQ(id->kind, Kind::Tuple);
  ASSERT_EQ(id->items.size(), 5u);
  expect_text(id->items[0], Kind::String, "storage");
  EXPECT_TRUE(id->items[1]->is_global("torch", "FloatStorage"));
  expect_int(id->items[4], 4);
}

TEST(PickleBinary, ReduceOfOrderedDictMakesADict) {
  // OrderedDict() then SETITEMS: how pickle writes an OrderedDict.
  const auto doc = parse(B("\x80\x02\x63" "collections\nOrderedDict\nq\x00)Rq\x01(\x8c\x01wK\x01\x8c\x01vK\x02u."));
  ASSERT_EQ(doc.root()->kind, Kind::Dict);
  ASSERT_EQ(doc.root()->entries.size(), 2u);
  expect_int(doc.root()->get("w"), 1);
  // OrderedDict([('a', 1)]): the pairs become entries.
  const auto pairs = parse(B("\x80\x02\x63" "collections\nOrderedDict\n](\x8c\x01\x61K\x01\x86\x65\x85R."));
  ASSERT_EQ(pairs.root()->kind, Kind::Dict);
  expect_int(pairs.root()->get("a"), 1);
}

TEST(PickleBinary, ReduceOfAnUnknownGlobalMakesAnObject) {
  const auto doc = parse(B("\x80\x02\x63somewhere.deep\nfactory\nK\x01\x8c\x01x\x86R."));
  const Value* o = doc.root();
  ASSERT_EQ(o->kind, Kind::Object);
  ASSERT_NE(o->callable, nullptr);
  EXPECT_TRUE(o->callable->is_global("somewhere.deep", "factory"));
  ASSERT_EQ(o->args->kind, Kind::Tuple);
  ASSERT_EQ(o->args->items.size(), 2u);
  expect_int(o->args->items[0], 1);
  expect_text(o->args->items[1], Kind::String, "x");
  EXPECT_EQ(o->state, nullptr);
}

TEST(PickleBinary, CodecsEncodeAndBytearrayMakeBytes) {
  // Python 2-compatible bytes in protocol 2: _codecs.encode('\xe9\x01z', 'latin1').
  expect_text(parse(B("\x80\x02\x63_codecs\nencode\nX\x04\x00\x00\x00\xc3\xa9\x01zX\x06\x00\x00\x00latin1\x86R.")).root(),
              Kind::Bytes, B("\xe9\x01z"));
  // A code point past latin-1 is kept as the call.
  const auto euro = parse(B("\x80\x02\x63_codecs\nencode\nX\x03\x00\x00\x00\xe2\x82\xacX\x06\x00\x00\x00latin1\x86R."));
  ASSERT_NE(euro.root()->made_by(), nullptr);
  EXPECT_TRUE(euro.root()->made_by()->is_global("_codecs", "encode"));
  expect_text(parse(B("\x80\x02\x63__builtin__\nbytearray\nC\x02hi\x85R.")).root(), Kind::Bytes, "hi");
}

TEST(PickleBinary, ConsumedStopsAtStop) {
  // A legacy torch file is pickles back to back: parse reports where the first one ended.
  const std::string first = B("\x80\x02K\x01."), second = B("\x80\x02K\x02.");
  std::size_t used = 0;
  expect_int(pickle::parse(first + second, &used).root(), 1);
  EXPECT_EQ(used, first.size());
  expect_int(pickle::parse(std::string_view(first + second).substr(used)).root(), 2);
  const std::string rich = rich_protocol2_stream();
  pickle::parse(rich, &used);
  EXPECT_EQ(used, rich.size());
}

TEST(PickleBinary, KindNamesAndDescriptions) {
  for (const Kind k : {Kind::None, Kind::Bool, Kind::Int, Kind::BigInt, Kind::Float, Kind::String, Kind::Bytes, Kind::Tuple,
                       Kind::List, Kind::Dict, Kind::Set, Kind::Global, Kind::Object, Kind::Persistent})
    EXPECT_STRNE(pickle::kind_name(k), "?");
  EXPECT_EQ(pickle::describe(nullptr), "nothing");
  EXPECT_EQ(pickle::describe(parse(B("\x80\x02K\x07.")).root()), "int 7");
  EXPECT_NE(pickle::describe(parse(B("\x80\x02\x8c\x03" "abc.")).root()).find("abc"), std::string::npos);
}

// ------------------------------------------------------------------------------- cycles and depth

TEST(PickleCycles, AListAppendedToItselfParsesAndIsDestroyed) {
  for (int round = 0; round < 100; ++round) {  // repeated: a leak would show under ASan / valgrind
    const auto doc = parse(B("\x80\x02]q\x00h\x00\x61."));
    const Value* list = doc.root();
    ASSERT_EQ(list->kind, Kind::List);
    ASSERT_EQ(list->items.size(), 1u);
    EXPECT_EQ(list->items[0], list);
    EXPECT_EQ(pickle::describe(list), "list");
  }
  // A dict holding itself, and an object whose state is itself.
  const auto dict = parse(B("\x80\x02}q\x00\x8c\x01\x61h\x00s."));
  EXPECT_EQ(dict.root()->get("a"), dict.root());
  const auto obj = parse(B("\x80\x02\x63m\nC\n)\x81q\x00h\x00\x62."));
  EXPECT_EQ(obj.root()->state, obj.root());
}

TEST(PickleCycles, DeepNestingDoesNotRecurse) {
  // 200000 lists, each appended to the one before: a chain as deep as the input is long.
  const std::size_t n = 200000;
  const std::string bytes = std::string("\x80\x02") + std::string(n, ']') + std::string(n - 1, 'a') + ".";
  const auto doc = parse(bytes);
  const Value* v = doc.root();
  std::size_t depth = 1;
  while (!v->items.empty()) {
    v = v->items[0];
    ++depth;
  }
  EXPECT_EQ(depth, n);
  // As deep with MARKs: nested tuples.
  std::string marks = "\x80\x02" + std::string(n, '(');
  for (std::size_t i = 0; i < n; ++i) marks += 't';
  marks += '.';
  EXPECT_EQ(parse(marks).root()->kind, Kind::Tuple);
}

// ----------------------------------------------------------------------------------------- errors

TEST(PickleErrors, EmptyAndTruncatedInput) {
  EXPECT_TRUE(FailsWith("", "ends before its STOP", 0));
  EXPECT_TRUE(FailsWith(B("\x80\x02K\x01"), "ends before its STOP", 4));
  // Every proper prefix of a valid stream fails cleanly, at an offset inside the prefix.
  for (const std::string& full : {rich_protocol2_stream(), pt::state_dict_pickle({pt::TensorSpec{}}, true),
                                  B("((lp0\nI1\naVx\nF1.5\nS'q'\np1\ng1\ncm\nf\n(I1\nimymod\nT\nPid\ntp2\n.")}) {
    ASSERT_NO_THROW(pickle::parse(full));
    for (std::size_t n = 0; n < full.size(); ++n) {
      const std::string prefix = full.substr(0, n);
      try {
        pickle::parse(prefix);
        ADD_FAILURE() << "a prefix of " << n << " of " << full.size() << " bytes parsed";
      } catch (const pickle::PickleError& e) {
        EXPECT_LE(e.offset(), n) << e.what();
      }
    }
  }
}

TEST(PickleErrors, UnknownOpcodeAndProtocol) {
  EXPECT_TRUE(FailsWith(B("\x80\x02K\x01\xff."), "unknown opcode", 4));
  EXPECT_TRUE(FailsWith(B("\x80\x02K\x01\xff."), "0xff", 4));
  EXPECT_TRUE(FailsWith(B("\x80\x06."), "protocol 6", 0));
  EXPECT_TRUE(FailsWith(B("\x80\x05K\x01\x82\x01."), "extension", 4));      // EXT1
  EXPECT_TRUE(FailsWith(B("\x80\x05\x97."), "out-of-band", 2));             // NEXT_BUFFER
}

TEST(PickleErrors, MemoGetBeforePut) {
  EXPECT_TRUE(FailsWith(B("\x80\x02h\x05."), "memo entry 5", 2));
  EXPECT_TRUE(FailsWith(B("g3\n."), "memo entry 3", 0));
  EXPECT_TRUE(FailsWith(B("\x80\x02K\x01q\x00j\x01\x00\x00\x00."), "memo entry 1", 6));
  EXPECT_TRUE(FailsWith(B("gx\n."), "not a number", 0));
}

TEST(PickleErrors, StackUnderflow) {
  EXPECT_TRUE(FailsWith(B("0."), "stack is empty", 0));                    // POP on empty
  EXPECT_TRUE(FailsWith(B("a."), "stack is empty", 0));                    // APPEND on empty
  EXPECT_TRUE(FailsWith(B("\x80\x02K\x01\x61."), "stack is empty", 4));    // APPEND with no list
  EXPECT_TRUE(FailsWith(B("\x80\x02K\x01K\x02\x61."), "APPEND on a int", 6));
  EXPECT_TRUE(FailsWith(B("\x80\x02](K\x01\x61."), "stack is empty", 6));  // the list is behind a MARK
  EXPECT_TRUE(FailsWith(B("\x80\x02K\x01\x86."), "stack is empty", 4));    // TUPLE2 with one value
  EXPECT_TRUE(FailsWith(B("\x80\x02(\x85."), "stack is empty", 3));        // TUPLE1 across a MARK
  EXPECT_TRUE(FailsWith(B("\x80\x02q\x00."), "stack is empty", 2));        // BINPUT on empty
  EXPECT_TRUE(FailsWith(B("\x80\x02\x32."), "stack is empty", 2));         // DUP on empty
  EXPECT_TRUE(FailsWith(B("\x80\x02K\x01\x62."), "stack is empty", 4));    // BUILD with nothing to build
  EXPECT_TRUE(FailsWith(B("1."), "no MARK", 0));                           // POP_MARK without MARK
  EXPECT_TRUE(FailsWith(B("\x80\x02K\x01t."), "no MARK", 4));              // TUPLE without MARK
}

TEST(PickleErrors, MalformedContainersAndCalls) {
  EXPECT_TRUE(FailsWith(B("\x80\x02}(K\x01u."), "odd number", 6));
  EXPECT_TRUE(FailsWith(B("\x80\x02(K\x01K\x02K\x03\x64."), "odd number", 9));
  EXPECT_TRUE(FailsWith(B("\x80\x02]K\x01K\x02s."), "SETITEM on a list", 7));
  EXPECT_TRUE(FailsWith(B("\x80\x04](K\x01\x90."), "ADDITEMS on a list", 6));
  EXPECT_TRUE(FailsWith(B("\x80\x02K\x01K\x02\x93."), "STACK_GLOBAL needs two strings", 6));
  EXPECT_TRUE(FailsWith(B("\x80\x02\x63m\nf\nK\x01R."), "REDUCE with int arguments", 9));
  EXPECT_TRUE(FailsWith(B("\x80\x02\x63m\nf\nK\x01\x81."), "NEWOBJ", 9));
  EXPECT_TRUE(FailsWith(B("(o."), "OBJ without a class", 1));
}

TEST(PickleErrors, MalformedTextArguments) {
  EXPECT_TRUE(FailsWith(B("I12"), "no terminating newline", 0));
  EXPECT_TRUE(FailsWith(B("Iabc\n."), "not an integer", 0));
  EXPECT_TRUE(FailsWith(B("I\n."), "not an integer", 0));
  EXPECT_TRUE(FailsWith(B("Fx\n."), "not a float", 0));
  EXPECT_TRUE(FailsWith(B("Sabc\n."), "not quoted", 0));
  EXPECT_TRUE(FailsWith(B("S'abc\"\n."), "not quoted", 0));
  EXPECT_TRUE(FailsWith(B("V\\u00g0\n."), "hex digit", 0));
  EXPECT_TRUE(FailsWith(B("V\\u00\n."), "truncated escape", 0));
  EXPECT_TRUE(FailsWith(B("cmodule_without_name\n"), "no terminating newline", 0));
}

TEST(PickleErrors, LengthsPastTheEndAreNotAllocated) {
  struct Case {
    std::string bytes, needle;
  };
  const std::vector<Case> cases = {
      {B("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff."), "runs past the end"},          // BINUNICODE8, 2**64 - 1
      {B("\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x01."), "runs past the end"},          // BINUNICODE8, 2**56
      {B("\x80\x04\x8e\x00\x00\x00\x40\x00\x00\x00\x00."), "runs past the end"},          // BINBYTES8, 1 GiB
      {B("\x80\x05\x96\xff\xff\xff\xff\xff\xff\xff\x7f."), "runs past the end"},          // BYTEARRAY8
      {B("\x80\x02X\xff\xff\xff\xff."), "runs past the end"},                             // BINUNICODE, 4 GiB
      {B("\x80\x03\x42\x00\x00\x00\x7f."), "runs past the end"},                          // BINBYTES
      {B("\x80\x02\x8b\xff\xff\xff\x7f."), "runs past the end"},                          // LONG4, 2 GiB
      {B("\x80\x02\x8b\xff\xff\xff\xff."), "negative length"},                            // LONG4, -1
      {B("\x80\x02T\x00\x00\x00\x80."), "negative length"},                               // BINSTRING
  };
  for (const Case& c : cases) {
    AllocationBudget budget(std::size_t{64} << 20);
    EXPECT_TRUE(FailsWith(c.bytes, c.needle, 2)) << ::testing::PrintToString(c.bytes);
    EXPECT_LT(budget.used(), std::size_t{1} << 20) << ::testing::PrintToString(c.bytes);
  }
  // A FRAME's length is advisory: a huge one is neither trusted nor allocated.
  AllocationBudget budget(std::size_t{64} << 20);
  expect_int(parse(B("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xffK\x07.")).root(), 7);
  EXPECT_LT(budget.used(), std::size_t{1} << 20);
}

TEST(PickleErrors, StopWithExtraValuesOrOpenMarks) {
  EXPECT_TRUE(FailsWith(B("\x80\x02K\x01K\x02."), "STOP with 2 values", 6));
  EXPECT_TRUE(FailsWith(B("\x80\x02."), "STOP with 0 values", 2));
  EXPECT_TRUE(FailsWith(B("\x80\x02(K\x01."), "1 open marks", 5));
}

// No input makes the reader allocate far more than its own size. Each stream below is a few kilobytes that
// copies a memoized value many times; a reader that copies instead of sharing (or counts what it copies)
// allocates the square of the input size. The bound is generous: a value costs ~200 bytes, and the
// smallest opcode that makes one is 1 byte.
TEST(PickleErrors, AllocationStaysProportionalToTheInput) {
  const auto bounded = [](const std::string& bytes, const char* what) {
    const std::size_t limit = 1024 * bytes.size() + (std::size_t{1} << 20);
    bool exceeded = false;
    {
      AllocationBudget budget(limit);
      try {
        pickle::parse(bytes);
      } catch (const pickle::PickleError&) {
        // refusing the input is fine too
      } catch (const std::bad_alloc&) {
        exceeded = true;
      }
    }
    if (exceeded) ADD_FAILURE() << what << ": a " << bytes.size() << "-byte pickle allocated more than " << limit << " bytes";
  };
  const int reps = 8192;
  const std::string big(1 << 16, 'x');
  {  // baseline: one value per input byte stays inside the bound
    std::string s = "\x80\x02(" + std::string(100000, ')') + "1N.";
    bounded(s, "empty tuples");
  }
  {  // STACK_GLOBAL on a memoized 64 KiB str, again and again
    pt::Pickle p;
    p.proto(2).unicode(big).binput(0);
    for (int i = 0; i < reps; ++i) p.binget(0).binget(0).op(0x93).op('0');
    bounded(p.stop().out(), "STACK_GLOBAL copies");
  }
  {  // builtins.set(list) on a memoized list of 16384 items
    pt::Pickle p;
    p.proto(2).global("builtins", "set").binput(0).op('0').empty_list().binput(1).mark();
    for (int i = 0; i < 16384; ++i) p.none();
    p.appends().op('0');
    for (int i = 0; i < reps; ++i) p.binget(0).binget(1).tuple(1).reduce().op('0');
    bounded(p.none().stop().out(), "set() copies");
  }
  {  // bytearray(bytes) on a memoized 64 KiB bytes
    pt::Pickle p;
    p.proto(2).global("builtins", "bytearray").binput(0).op('0').binbytes(big).binput(1).op('0');
    for (int i = 0; i < reps; ++i) p.binget(0).binget(1).tuple(1).reduce().op('0');
    bounded(p.none().stop().out(), "bytearray() copies");
  }
  {  // _codecs.encode(str, 'latin1') on a memoized 64 KiB str
    pt::Pickle p;
    p.proto(2).global("_codecs", "encode").binput(0).op('0').unicode(big).binput(1).op('0').unicode("latin1").binput(2).op('0');
    for (int i = 0; i < reps; ++i) p.binget(0).binget(1).binget(2).tuple(2).reduce().op('0');
    bounded(p.none().stop().out(), "_codecs.encode copies");
  }
  {  // OrderedDict(list of 16384 pairs)
    pt::Pickle p;
    p.proto(2).global("collections", "OrderedDict").binput(0).op('0').none().none().tuple(2).binput(1).op('0');
    p.empty_list().binput(2).mark();
    for (int i = 0; i < 16384; ++i) p.binget(1);
    p.appends().op('0');
    for (int i = 0; i < reps; ++i) p.binget(0).binget(2).tuple(1).reduce().op('0');
    bounded(p.none().stop().out(), "OrderedDict() copies");
  }
}

// Nor take time far beyond its size: a dict of 60000 distinct keys (360 KB of SETITEMS) parses in
// milliseconds when each key is found by hashing; comparing every new key with every earlier one takes
// seconds, and a few megabytes would take hours.
TEST(PickleErrors, WideDictsParseInLinearTime) {
  pt::Pickle p;
  p.proto(2).empty_dict().mark();
  for (uint32_t i = 0; i < 60000; ++i) p.op('J').le(1000000 + i, 4).none();
  p.setitems().stop();
  const auto start = std::chrono::steady_clock::now();
  const auto doc = parse(p.out());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(doc.root()->entries.size(), 60000u);
  EXPECT_LT(seconds, 1.0) << "a " << p.out().size() << "-byte dict took " << seconds << " s";
}

// ======================================================================================== pt_file

namespace {

const char* const kSource = "weights/model.pt";

ptfile::Checkpoint read(const std::string& bytes) { return ptfile::parse_checkpoint(bytes, kSource); }

// Parses, finds the weights and gathers every tensor: the whole path a reader takes.
void read_all(const std::string& bytes) {
  const ptfile::Checkpoint ck = read(bytes);
  const ptfile::FoundWeights found = ptfile::find_weights(ck);
  for (const auto& t : found.tensors) (void)t.contiguous_bytes();
}

// Writes the data into a fresh Checkpoint and finds the weights; the result keeps the checkpoint alive.
struct Read {
  ptfile::Checkpoint checkpoint;
  ptfile::FoundWeights found;
};
Read read_weights(const std::string& bytes) {
  Read r{read(bytes), {}};
  r.found = ptfile::find_weights(r.checkpoint);
  return r;
}

std::string zip_of(const std::vector<pt::TensorSpec>& tensors, const std::vector<pt::StorageBytes>& storages) {
  return pt::torch_zip(pt::state_dict_pickle(tensors), storages);
}

// Where the data of record `name` starts in a zip made by pt::stored_zip (`data`: its first bytes).
std::size_t record_data_offset(const std::string& zip, const std::string& name, const std::string& data) {
  const std::size_t header = zip.find(name);
  EXPECT_NE(header, std::string::npos);
  const std::size_t at = zip.find(data, header + name.size());
  EXPECT_NE(at, std::string::npos);
  return at;
}

}  // namespace

TEST(PtFile, Crc32) {
  EXPECT_EQ(ptfile::crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(ptfile::crc32(""), 0u);
  EXPECT_EQ(ptfile::crc32("6789", ptfile::crc32("12345")), 0xCBF43926u);  // continued
  EXPECT_EQ(pt::crc32("123456789"), 0xCBF43926u);                         // the test writer's agrees
  const std::string zip = pt::small_torch_zip();
  EXPECT_EQ(ptfile::crc32(zip), pt::crc32(zip));
}

TEST(PtFile, DtypeNamesAndSizes) {
  using D = ptfile::DType;
  const std::vector<std::tuple<D, const char*, int>> all = {
      {D::Float32, "float32", 4}, {D::Float64, "float64", 8},     {D::Float16, "float16", 2},       {D::BFloat16, "bfloat16", 2},
      {D::Int64, "int64", 8},     {D::Int32, "int32", 4},         {D::Int16, "int16", 2},           {D::Int8, "int8", 1},
      {D::UInt8, "uint8", 1},     {D::Bool, "bool", 1},           {D::Complex64, "complex64", 8},   {D::Complex128, "complex128", 16}};
  for (const auto& [dtype, name, size] : all) {
    EXPECT_STREQ(ptfile::dtype_name(dtype), name);
    EXPECT_EQ(ptfile::dtype_size(dtype), size) << name;
  }
}

TEST(PtFile, ReadsAStateDictFromATorchZip) {
  const Read r = read_weights(pt::small_torch_zip());
  EXPECT_EQ(r.checkpoint.source, kSource);
  EXPECT_EQ(r.checkpoint.container, "zip");
  EXPECT_EQ(r.checkpoint.record_prefix, "archive/");
  EXPECT_EQ(r.checkpoint.records, (std::vector<std::string>{"archive/data.pkl", "archive/data/0", "archive/version"}));
  EXPECT_EQ(r.found.entry, "");
  EXPECT_EQ(r.found.layout, "state_dict");
  ASSERT_EQ(r.found.tensors.size(), 1u);
  const ptfile::TensorRef& w = r.found.tensors[0];
  EXPECT_EQ(w.name, "w");
  EXPECT_EQ(w.dtype, ptfile::DType::Float32);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(w.stride, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(w.offset, 0);
  EXPECT_EQ(w.numel(), 4);
  EXPECT_FALSE(w.parameter);
  ASSERT_NE(w.storage, nullptr);
  EXPECT_EQ(w.storage->numel(), 4);
  EXPECT_EQ(w.contiguous_bytes(), pt::floats({1, 2, 3, 4}));
}

TEST(PtFile, AnyArchiveFolderName) {
  const std::string zip = pt::torch_zip(pt::state_dict_pickle({pt::TensorSpec{}}), {{"0", pt::floats({1, 2, 3, 4})}}, "yolov8n");
  const Read r = read_weights(zip);
  EXPECT_EQ(r.checkpoint.record_prefix, "yolov8n/");
  ASSERT_EQ(r.found.tensors.size(), 1u);
  EXPECT_EQ(r.found.tensors[0].contiguous_bytes(), pt::floats({1, 2, 3, 4}));
}

TEST(PtFile, StridedViewsAreGathered) {
  pt::TensorSpec transposed;  // w.t(): element [i][j] at i + 2j
  transposed.stride = {1, 2};
  pt::TensorSpec offset;      // rows 1..2 of a 3x2 storage
  offset.name = "o";
  offset.storage_key = "1";
  offset.storage_numel = 6;
  offset.offset = 2;
  pt::TensorSpec every_other;  // [::2] of the same storage, from element 1
  every_other.name = "e";
  every_other.storage_key = "1";
  every_other.storage_numel = 6;
  every_other.offset = 1;
  every_other.shape = {3};
  every_other.stride = {2};
  pt::TensorSpec scalar;  // a 0-d tensor
  scalar.name = "s";
  scalar.offset = 3;
  scalar.shape = {};
  scalar.stride = {};
  pt::TensorSpec empty;
  empty.name = "z";
  empty.shape = {0, 3};
  empty.stride = {3, 1};
  pt::TensorSpec broadcast;  // expand(): stride 0
  broadcast.name = "b";
  broadcast.shape = {3, 2};
  broadcast.stride = {0, 1};
  const std::string zip = zip_of({transposed, offset, every_other, scalar, empty, broadcast},
                                 {{"0", pt::floats({1, 2, 3, 4})}, {"1", pt::floats({10, 20, 30, 40, 50, 60})}});
  const Read r = read_weights(zip);
  ASSERT_EQ(r.found.tensors.size(), 6u);
  EXPECT_EQ(r.found.tensors[0].contiguous_bytes(), pt::floats({1, 3, 2, 4}));
  EXPECT_EQ(r.found.tensors[1].contiguous_bytes(), pt::floats({30, 40, 50, 60}));
  EXPECT_EQ(r.found.tensors[2].contiguous_bytes(), pt::floats({20, 40, 60}));
  EXPECT_EQ(r.found.tensors[1].storage, r.found.tensors[2].storage);  // one storage, two views
  EXPECT_EQ(r.found.tensors[3].numel(), 1);
  EXPECT_EQ(r.found.tensors[3].contiguous_bytes(), pt::floats({4}));
  EXPECT_EQ(r.found.tensors[4].numel(), 0);
  EXPECT_EQ(r.found.tensors[4].contiguous_bytes(), "");
  EXPECT_EQ(r.found.tensors[5].contiguous_bytes(), pt::floats({1, 2, 1, 2, 1, 2}));
}

TEST(PtFile, DtypesParametersAndByteOrder) {
  pt::TensorSpec half;
  half.storage_type = "HalfStorage";
  half.shape = {4};
  half.stride = {1};
  half.parameter = true;
  const std::string h = B("\x00\x3c\x00\x40\x00\x42\x00\x44");  // 1, 2, 3, 4 in float16
  const Read r = read_weights(zip_of({half}, {{"0", h}}));
  ASSERT_EQ(r.found.tensors.size(), 1u);
  EXPECT_EQ(r.found.tensors[0].dtype, ptfile::DType::Float16);
  EXPECT_TRUE(r.found.tensors[0].parameter);
  EXPECT_EQ(r.found.tensors[0].contiguous_bytes(), h);

  // A zip written on a big-endian machine says so in PREFIX/byteorder; the bytes come back little-endian.
  std::string be = pt::floats({1, 2, 3, 4});
  for (std::size_t i = 0; i < be.size(); i += 4) std::reverse(be.begin() + static_cast<std::ptrdiff_t>(i), be.begin() + static_cast<std::ptrdiff_t>(i) + 4);
  const Read big = read_weights(pt::torch_zip(pt::state_dict_pickle({pt::TensorSpec{}}), {{"0", be}}, "archive", "big"));
  ASSERT_EQ(big.found.tensors.size(), 1u);
  EXPECT_EQ(big.found.tensors[0].contiguous_bytes(), pt::floats({1, 2, 3, 4}));
  const Read little = read_weights(pt::torch_zip(pt::state_dict_pickle({pt::TensorSpec{}}), {{"0", pt::floats({1, 2, 3, 4})}}, "archive", "little"));
  EXPECT_EQ(little.found.tensors[0].contiguous_bytes(), pt::floats({1, 2, 3, 4}));
}

TEST(PtFile, ReadsTheLegacyFormat) {
  const std::string file = pt::torch_legacy(pt::state_dict_pickle({pt::TensorSpec{}}, true), {{"0", pt::floats({1, 2, 3, 4})}});
  const Read r = read_weights(file);
  EXPECT_EQ(r.checkpoint.container, "legacy");
  ASSERT_EQ(r.found.tensors.size(), 1u);
  EXPECT_EQ(r.found.tensors[0].name, "w");
  EXPECT_EQ(r.found.tensors[0].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(r.found.tensors[0].contiguous_bytes(), pt::floats({1, 2, 3, 4}));
}

// torch's legacy writer (THPStorage_writeFileRaw) converts every storage, and its element count, to
// little-endian whatever the machine; sys_info's little_endian only records the writer's byte order.
TEST(PtFile, LegacyStoragesAreLittleEndianWhateverTheWriter) {
  const std::string file =
      pt::torch_legacy(pt::state_dict_pickle({pt::TensorSpec{}}, true), {{"0", pt::floats({1, 2, 3, 4})}}, /*little_endian=*/false);
  const Read r = read_weights(file);
  ASSERT_EQ(r.found.tensors.size(), 1u);
  EXPECT_EQ(r.found.tensors[0].contiguous_bytes(), pt::floats({1, 2, 3, 4}));
}

TEST(PtFile, FindsTheWeightsOfATrainingCheckpoint) {
  // {"epoch": 5, "model": {...}, "ema": {...}}: the EMA weights are read, and the note says what else there was.
  pt::TensorSpec a, b;
  a.name = "module.a";
  b.name = "module.b";
  b.storage_key = "1";
  pt::Pickle p;
  p.proto(2).empty_dict().mark().unicode("epoch").integer(5);
  for (const char* entry : {"model", "ema"}) {
    p.unicode(entry).memo_global("collections", "OrderedDict").tuple(0).reduce().mark();
    for (const auto& t : {a, b}) {
      p.unicode(t.name);
      pt::tensor(p, t);
    }
    p.setitems();
  }
  p.unicode("optimizer").none().setitems().stop();
  const Read r = read_weights(pt::torch_zip(p.out(), {{"0", pt::floats({1, 2, 3, 4})}, {"1", pt::floats({5, 6, 7, 8})}}));
  EXPECT_EQ(r.found.entry, "ema");
  EXPECT_EQ(r.found.layout, "state_dict");
  ASSERT_EQ(r.found.tensors.size(), 2u);
  EXPECT_EQ(r.found.tensors[0].name, "a");  // DDP's "module." removed
  EXPECT_EQ(r.found.tensors[1].name, "b");
  EXPECT_EQ(r.found.tensors[1].contiguous_bytes(), pt::floats({5, 6, 7, 8}));
  EXPECT_FALSE(r.found.notes.empty());
}

TEST(PtFile, WalksAPickledModuleTree) {
  pt::TensorSpec weight, running;
  weight.name = "weight";
  running.name = "running";
  running.storage_key = "1";
  running.storage_numel = 2;
  running.shape = {2};
  running.stride = {1};
  const std::string zip = pt::torch_zip(pt::module_tree_pickle(weight, running),
                                        {{"0", pt::floats({1, 2, 3, 4})}, {"1", pt::floats({5, 6})}});
  const Read r = read_weights(zip);
  EXPECT_EQ(r.found.entry, "model");
  EXPECT_EQ(r.found.layout, "module tree");
  EXPECT_EQ(r.found.module_class, "models.Net");
  ASSERT_EQ(r.found.tensors.size(), 2u);
  EXPECT_EQ(r.found.tensors[0].name, "conv.weight");
  EXPECT_TRUE(r.found.tensors[0].parameter);
  EXPECT_EQ(r.found.tensors[0].contiguous_bytes(), pt::floats({1, 2, 3, 4}));
  EXPECT_EQ(r.found.tensors[1].name, "conv.running");
  EXPECT_FALSE(r.found.tensors[1].parameter);
  EXPECT_EQ(r.found.tensors[1].contiguous_bytes(), pt::floats({5, 6}));
  EXPECT_EQ(r.found.class_names, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(r.found.imgsz, 640);
}

// ------------------------------------------------------------------------------------ bad files

TEST(PtFileErrors, NotACheckpoint) {
  EXPECT_THROW_WITH(read(""), CheckpointError, kSource, "");
  EXPECT_THROW_WITH(read("this is not a checkpoint at all\n"), CheckpointError, kSource, "");
  EXPECT_THROW_WITH(read(std::string(1000, '\0')), CheckpointError, kSource, "");
  // Starts like a zip, then stops.
  EXPECT_THROW_WITH(read(B("PK\x03\x04\x14\x00\x00\x00")), CheckpointError, kSource, "");
  EXPECT_THROW_WITH(read(pt::small_torch_zip().substr(0, 100)), CheckpointError, kSource, "");
  // A tar archive (torch before 0.4).
  std::string tar(1024, '\0');
  tar.replace(0, 7, "tensors");
  tar.replace(257, 6, std::string("ustar\0", 6));
  EXPECT_THROW_WITH(read(tar), CheckpointError, kSource, "");
  // A bare pickle is neither a zip nor a legacy file.
  EXPECT_THROW_WITH(read_all(pt::state_dict_pickle({pt::TensorSpec{}})), CheckpointError, kSource, "");
  EXPECT_THROW_WITH(read_all(B("\x80\x02K\x01.")), CheckpointError, kSource, "");
  // A zip that is not torch's: no data.pkl.
  EXPECT_THROW_WITH(read(pt::stored_zip({{"readme.txt", "hello"}})), CheckpointError, "data.pkl", "");
  // A missing file.
  EXPECT_THROW_WITH(ptfile::read_checkpoint("/nonexistent/detkit/model.pt"), CheckpointError, "/nonexistent/detkit/model.pt", "");
}

TEST(PtFileErrors, APickleWithoutTensors) {
  const std::string pkl = B("\x80\x02}(\x8c\x05\x65pochK\x03\x8c\x04nameX\x01\x00\x00\x00xu.");
  EXPECT_THROW_WITH(read_all(pt::torch_zip(pkl, {})), CheckpointError, kSource, "");
  EXPECT_THROW_WITH(read_all(pt::torch_zip(pkl, {})), CheckpointError, "epoch", "");  // names what it found
  EXPECT_THROW_WITH(read_all(pt::torch_zip(B("\x80\x02K\x07."), {})), CheckpointError, kSource, "");
  EXPECT_THROW_WITH(read_all(pt::torch_zip(B("\x80\x02]q\x00h\x00\x61."), {})), CheckpointError, kSource, "");  // a cycle
  // A data.pkl that is not a pickle at all names the record.
  EXPECT_THROW_WITH(read_all(pt::torch_zip("garbage", {})), CheckpointError, "data.pkl", "");
  // A persistent id that is not a storage.
  EXPECT_THROW_WITH(read_all(pt::torch_zip(B("\x80\x02\x8c\x03odd\x85Q."), {})), CheckpointError, kSource, "");
}

TEST(PtFileErrors, TamperedRecordsFailTheirCrc) {
  const std::string zip = pt::small_torch_zip();
  {  // a byte of the storage
    std::string bad = zip;
    bad[record_data_offset(zip, "archive/data/0", pt::floats({1, 2, 3, 4})) + 5] ^= 0x01;
    EXPECT_THROW_WITH(read_all(bad), CheckpointError, "archive/data/0", "");
    EXPECT_THROW_WITH(read_all(bad), CheckpointError, "CRC", "");
  }
  {  // a byte of the pickle
    const std::string pkl = pt::state_dict_pickle({pt::TensorSpec{}});
    std::string bad = zip;
    bad[record_data_offset(zip, "archive/data.pkl", pkl) + pkl.size() / 2] ^= 0x20;
    EXPECT_THROW_WITH(read_all(bad), CheckpointError, "archive/data.pkl", "");
  }
}

// pt_file.h: "Every zip record's CRC-32 is checked", including records the reader does not otherwise use.
TEST(PtFileErrors, EveryRecordsCrcIsChecked) {
  const std::string zip = pt::small_torch_zip();
  std::string bad = zip;
  bad[record_data_offset(zip, "archive/version", "3\n")] = '4';
  EXPECT_THROW_WITH(read_all(bad), CheckpointError, "archive/version", "");
}

TEST(PtFileErrors, InconsistentStoragesAndTensors) {
  {  // the reference names a storage record the zip lacks
    pt::TensorSpec t;
    t.storage_key = "7";
    EXPECT_THROW_WITH(read_all(zip_of({t}, {{"0", pt::floats({1, 2, 3, 4})}})), CheckpointError, "data/7", "");
  }
  {  // the storage record is shorter than the reference says
    pt::TensorSpec t;
    t.storage_numel = 8;
    EXPECT_THROW_WITH(read_all(zip_of({t}, {{"0", pt::floats({1, 2, 3, 4})}})), CheckpointError, "archive/data/0", "");
  }
  {  // the view runs past its storage
    pt::TensorSpec t;
    t.shape = {3, 3};
    t.stride = {3, 1};
    EXPECT_THROW_WITH(read_all(zip_of({t}, {{"0", pt::floats({1, 2, 3, 4})}})), CheckpointError, "'w'", "");
    t.shape = {2, 2};
    t.stride = {2, 1};
    t.offset = 1;
    EXPECT_THROW_WITH(read_all(zip_of({t}, {{"0", pt::floats({1, 2, 3, 4})}})), CheckpointError, "'w'", "");
    t.offset = 0;
    t.stride = {2, -1};
    EXPECT_THROW_WITH(read_all(zip_of({t}, {{"0", pt::floats({1, 2, 3, 4})}})), CheckpointError, "'w'", "");
    t.stride = {2};
    EXPECT_THROW_WITH(read_all(zip_of({t}, {{"0", pt::floats({1, 2, 3, 4})}})), CheckpointError, "'w'", "");
  }
  {  // a compressed record
    std::string zip = pt::small_torch_zip();
    for (std::size_t at = zip.find("PK\x01\x02"); at != std::string::npos; at = zip.find("PK\x01\x02", at + 1)) zip[at + 10] = 8;
    EXPECT_THROW_WITH(read_all(zip), CheckpointError, "compressed", "");
  }
}

// Sizes, strides and offsets near int64's limits must be refused, never wrap around the geometry check (a
// wrapped check lets contiguous_bytes() read far outside the storage). find_weights must throw for each;
// contiguous_bytes() is never called here.
TEST(PtFileErrors, GeometryThatOverflowsIsRefused) {
  struct Case {
    int64_t offset;
    std::vector<int64_t> shape, stride;
  };
  const std::vector<Case> cases = {
      {std::numeric_limits<int64_t>::max(), {2}, {1}},  // offset + 1 wraps negative
      {std::numeric_limits<int64_t>::max() - 1, {2, 2}, {1, 1}},
      {0, {int64_t{1} << 24}, {int64_t{1} << 40}},      // (2**24 - 1) * 2**40 wraps to -2**40
      {int64_t{1} << 62, {1}, {1}},                      // far past the storage, no wrap
  };
  for (const Case& c : cases) {
    pt::TensorSpec t;
    t.offset = c.offset;
    t.shape = c.shape;
    t.stride = c.stride;
    const std::string zip = zip_of({t}, {{"0", pt::floats({1, 2, 3, 4})}});
    const ptfile::Checkpoint ck = read(zip);
    SCOPED_TRACE(cat("offset ", c.offset, ", shape[0] ", c.shape[0], ", stride[0] ", c.stride[0]));
    EXPECT_THROW_WITH(ptfile::find_weights(ck), CheckpointError, "'w'", "");
  }
}

TEST(PtFileErrors, TruncatedAtEveryLengthThrows) {
  for (const std::string& file : {pt::small_torch_zip(),
                                  pt::torch_legacy(pt::state_dict_pickle({pt::TensorSpec{}}, true), {{"0", pt::floats({1, 2, 3, 4})}})}) {
    ASSERT_NO_THROW(read_all(file));
    for (std::size_t n = 0; n < file.size(); ++n) {
      try {
        read_all(file.substr(0, n));
        ADD_FAILURE() << "a file cut to " << n << " of " << file.size() << " bytes was read";
      } catch (const CheckpointError& e) {
        EXPECT_NE(format_error(e).find(kSource), std::string::npos) << format_error(e);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "cut to " << n << " bytes: another exception: " << e.what();
      }
    }
  }
}

// Every single-byte change gives the tensors or a CheckpointError: never a crash or another exception.
TEST(PtFileErrors, EveryByteFlipIsReadOrRefused) {
  pt::TensorSpec t;
  t.stride = {1, 2};
  for (const std::string& file : {zip_of({t}, {{"0", pt::floats({1, 2, 3, 4})}}),
                                  pt::torch_legacy(pt::state_dict_pickle({t}, true), {{"0", pt::floats({1, 2, 3, 4})}})}) {
    for (std::size_t i = 0; i < file.size(); ++i)
      for (const unsigned char flip : {0x01, 0x80, 0xFF}) {
        std::string bad = file;
        bad[i] = static_cast<char>(bad[i] ^ flip);
        try {
          read_all(bad);
        } catch (const CheckpointError&) {
        } catch (const std::exception& e) {
          ADD_FAILURE() << "byte " << i << " ^ " << int{flip} << ": another exception: " << e.what();
        }
      }
  }
}

// A zip64 end record in a file too short to hold one: the reader must not follow its offset outside the file.
// (Run in a child process: an out-of-bounds read would crash the whole test binary.)
TEST(PtFileErrors, Zip64RecordInATinyFile) {
  pt::Pickle f;
  f.raw("PK\x03\x04");
  f.le(0x07064b50u, 4).le(0, 4).le(uint64_t{1} << 44, 8).le(1, 4);  // zip64 locator -> offset 2**44
  f.le(0x06054b50u, 4).le(0, 2).le(0, 2).le(0xFFFF, 2).le(0xFFFF, 2).le(0xFFFFFFFFu, 4).le(0xFFFFFFFFu, 4).le(0, 2);
  const std::string file = f.out();
  ASSERT_EQ(file.size(), 46u);
  // Exit 0: refused with a CheckpointError; 1: read (it should not be); a signal: crashed.
  EXPECT_EXIT(
      {
        try {
          read(file);
        } catch (const CheckpointError&) {
          std::exit(0);
        }
        std::exit(1);
      },
      ::testing::ExitedWithCode(0), "");
}
