// Tests of crepe::io safetensors reading and writing: round trips, byte-identical passthrough of the
// shared checkpoints, the writer's temporary-file discipline, rejection of every kind of malformed
// header, and sharded checkpoints.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>

#include "crepe/core/error.hpp"
#include "crepe/io/safetensors.hpp"
#include "test_support.hpp"

namespace crepe::io {
namespace {

namespace fs = std::filesystem;
using test::input_error_of;
using test::read_file;
using test::shared_path;
using test::TempDir;
using test::write_file;

// ---------------------------------------------------------------------------------------------
// Helpers

std::string le64(uint64_t value) {
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &value, 8);
  return bytes;
}

// A safetensors file from its parts: length prefix, header text, data section.
std::string file_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string floats_as_bytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Same dtype, shape and stored bytes (unlike at::equal, also true for matching NaNs and -0.0).
void expect_same_tensor(const at::Tensor& actual, const at::Tensor& expected) {
  ASSERT_EQ(actual.scalar_type(), expected.scalar_type());
  ASSERT_EQ(actual.sizes(), expected.sizes());
  const at::Tensor a = actual.contiguous();
  const at::Tensor b = expected.contiguous();
  ASSERT_EQ(a.nbytes(), b.nbytes());
  if (a.nbytes() > 0) EXPECT_EQ(std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()), 0);
}

uint64_t header_length(const std::string& bytes) {
  uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  return length;
}

std::vector<SafetensorsWriter::Entry> layout_of(const SafetensorsFile& file) {
  std::vector<SafetensorsWriter::Entry> layout;
  for (const TensorInfo& info : file.tensors()) layout.push_back({info.name, info.dtype, info.shape});
  return layout;
}

// Sums in double, element by element in storage order, exactly as the python3 cross-checks do.
double sequential_sum(const at::Tensor& tensor) {
  const at::Tensor values = tensor.to(at::kFloat).contiguous();
  const float* data = values.data_ptr<float>();
  double sum = 0.0;
  for (int64_t i = 0; i < values.numel(); ++i) sum += data[i];
  return sum;
}

// Lowers the file size limit so that writes fail with EFBIG, the way a full disk makes them fail.
// SIGXFSZ (which would kill the process) is ignored meanwhile.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    previous_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &lowered);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_handler_);
  }

 private:
  rlimit saved_{};
  void (*previous_handler_)(int) = nullptr;
};

// ---------------------------------------------------------------------------------------------
// dtype helpers

TEST(SafetensorsDType, NamesSizesAndScalarTypes) {
  EXPECT_EQ(dtype_to_string(DType::F32), "F32");
  EXPECT_EQ(dtype_to_string(DType::F16), "F16");
  EXPECT_EQ(dtype_to_string(DType::BF16), "BF16");
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::F16), 2u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) EXPECT_EQ(from_scalar_type(to_scalar_type(dtype)), dtype);
  EXPECT_EQ(to_scalar_type(DType::BF16), c10::kBFloat16);
  EXPECT_EQ(to_scalar_type(DType::F16), c10::kHalf);
  const std::string message = input_error_of([] { from_scalar_type(c10::kDouble); });
  EXPECT_TRUE(contains(message, "Double")) << message;
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(SafetensorsRoundTrip, KeepsValuesDtypesShapesAndMetadata) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", at::tensor({-1.0f, 0.25f, -0.0f, nan, inf, 3.5e-40f}).reshape({2, 3})},
      {"f16", at::tensor({0.5f, -1.25f, 3.0f, 65504.0f}).to(at::kHalf)},
      {"bf16", at::tensor({1.0f, -2.0f, 0.15625f, 3.0e38f}).reshape({2, 2}).to(at::kBFloat16)},
      {"scalar", at::scalar_tensor(42.5, at::kFloat)},
      {"empty_f32", at::empty({0, 5}, at::kFloat)},
      {"empty_bf16", at::empty({3, 0}, at::kBFloat16)},
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "crepe test"}};
  write_safetensors(path, tensors, metadata);

  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->metadata(), metadata);
  ASSERT_EQ(file->tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, original] = tensors[i];
    SCOPED_TRACE(name);
    const TensorInfo& info = file->tensors()[i];  // file order is the order written
    EXPECT_EQ(info.name, name);
    EXPECT_EQ(to_scalar_type(info.dtype), original.scalar_type());
    EXPECT_EQ(info.shape, original.sizes().vec());
    EXPECT_EQ(info.numel(), original.numel());
    expect_same_tensor(file->load(name), original);
  }
  const at::Tensor scalar = file->load("scalar");
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.item<float>(), 42.5f);
  EXPECT_EQ(file->info("empty_bf16").nbytes(), 0u);
  // The raw bytes are the little-endian floats themselves.
  EXPECT_EQ(std::memcmp(file->raw("f16"), tensors[1].second.data_ptr(), 8), 0);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(SafetensorsRoundTrip, LoadedTensorOwnsItsMemory) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  write_safetensors(path, {{"x", at::tensor({1.0f, 2.0f})}});
  at::Tensor loaded;
  {
    const auto file = SafetensorsFile::open(path);
    loaded = file->load("x");
  }  // unmapped here
  EXPECT_EQ(loaded[1].item<float>(), 2.0f);
}

TEST(SafetensorsWriter, ConvertsToThePlannedDtype) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const at::Tensor values = at::tensor({1.0f, 1.00390625f, -3.14159f, 1e-3f});
  SafetensorsWriter writer(path, {{"bf16", DType::BF16, {4}}, {"f16", DType::F16, {2, 2}}});
  writer.put("bf16", values);
  writer.put("f16", values.reshape({2, 2}).to(at::kDouble));
  writer.commit();
  const auto file = SafetensorsFile::open(path);
  expect_same_tensor(file->load("bf16"), values.to(at::kBFloat16));
  expect_same_tensor(file->load("f16"), values.reshape({2, 2}).to(at::kHalf));
}

// ---------------------------------------------------------------------------------------------
// Byte-identical passthrough of the shared checkpoints. Their headers (inspected with python3) are
// what Hugging Face writes and crepe's writer reproduces: compact JSON, {"format":"pt"} metadata
// first, entries in data-offset order (here also alphabetical), keys dtype/shape/data_offsets,
// space padding to a multiple of 8.

enum class Copy { LoadAndPutInReverse, PutRaw };

void expect_byte_identical_copy(const std::string& source, Copy how) {
  TempDir dir;
  const std::string copy = dir.file("copy.safetensors");
  const auto in = SafetensorsFile::open(source);
  SafetensorsWriter writer(copy, layout_of(*in), in->metadata());
  const std::vector<TensorInfo>& tensors = in->tensors();
  if (how == Copy::PutRaw) {
    for (const TensorInfo& info : tensors) writer.put_raw(info.name, in->raw(info.name), info.nbytes());
  } else {  // reverse order: the writer accepts tensors in any order
    for (auto it = tensors.rbegin(); it != tensors.rend(); ++it) writer.put(it->name, in->load(it->name));
  }
  EXPECT_TRUE(writer.complete());
  writer.commit();

  const std::string expected = read_file(source);
  const std::string actual = read_file(copy);
  ASSERT_EQ(actual.size(), expected.size());
  const auto mismatch = std::mismatch(expected.begin(), expected.end(), actual.begin());
  EXPECT_TRUE(mismatch.first == expected.end()) << "first differing byte at " << (mismatch.first - expected.begin());
}

TEST(SafetensorsPassthrough, Stories260kLoadAndPutIsByteIdentical) {
  expect_byte_identical_copy(shared_path("models/stories260k/model.safetensors"), Copy::LoadAndPutInReverse);
}

TEST(SafetensorsPassthrough, Stories260kPutRawIsByteIdentical) {
  expect_byte_identical_copy(shared_path("models/stories260k/model.safetensors"), Copy::PutRaw);
}

TEST(SafetensorsPassthrough, MiniLlamaLoadAndPutIsByteIdentical) {
  expect_byte_identical_copy(shared_path("models/mini-llama-6m/model.safetensors"), Copy::LoadAndPutInReverse);
}

TEST(SafetensorsPassthrough, MiniLlamaPutRawIsByteIdentical) {
  expect_byte_identical_copy(shared_path("models/mini-llama-6m/model.safetensors"), Copy::PutRaw);
}

// ---------------------------------------------------------------------------------------------
// Known values of the shared checkpoints, cross-checked with python3 (struct module):
//   b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8+n])
//   s, e = h[name]['data_offsets']; raw = b[8+n+s : 8+n+e]
//   F32:  vals = struct.unpack('<%df' % ((e-s)//4), raw)
//   BF16: vals = [struct.unpack('<f', struct.pack('<I', x << 16))[0]
//                 for x in struct.unpack('<%dH' % ((e-s)//2), raw)]
//   acc = 0.0; for v in vals: acc += v          -> float.hex(acc)

TEST(RealCheckpoints, Stories260kEmbeddingValues) {
  const TensorStore store = TensorStore::open_dir(shared_path("models/stories260k"));
  EXPECT_FALSE(store.is_sharded());
  EXPECT_EQ(store.shard_files(), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(store.names().size(), 47u);  // 5 layers x 9 + embeddings + final norm (lm_head tied)
  EXPECT_EQ(store.shard(0).metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));

  const TensorInfo& info = store.info("model.embed_tokens.weight");
  EXPECT_EQ(info.dtype, DType::F32);
  EXPECT_EQ(info.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(info.begin, 0u);
  EXPECT_EQ(info.end, 131072u);
  const at::Tensor embed = store.load("model.embed_tokens.weight");
  ASSERT_EQ(embed.scalar_type(), at::kFloat);
  EXPECT_EQ(embed[0][0].item<float>(), -0x1.2dd2ap-2f);
  EXPECT_EQ(embed[1][2].item<float>(), 0x1.366b94p-1f);
  EXPECT_EQ(embed[511][63].item<float>(), -0x1.b2359ap-2f);
  EXPECT_EQ(sequential_sum(embed), -0x1.782f1241d498p+9);  // -752.3677446640068
}

TEST(RealCheckpoints, MiniLlamaIsBf16WithExpectedShapes) {
  const TensorStore store = TensorStore::open_dir(shared_path("models/mini-llama-6m"));
  EXPECT_EQ(store.names().size(), 57u);  // 6 layers x 9 + embeddings + final norm + lm_head
  for (const std::string& name : store.names()) EXPECT_EQ(store.info(name).dtype, DType::BF16) << name;
  using Shape = std::vector<int64_t>;
  EXPECT_EQ(store.info("lm_head.weight").shape, (Shape{4096, 256}));
  EXPECT_EQ(store.info("model.embed_tokens.weight").shape, (Shape{4096, 256}));
  EXPECT_EQ(store.info("model.layers.0.self_attn.q_proj.weight").shape, (Shape{256, 256}));
  EXPECT_EQ(store.info("model.layers.0.self_attn.k_proj.weight").shape, (Shape{128, 256}));  // 4 KV heads x 32
  EXPECT_EQ(store.info("model.layers.0.mlp.gate_proj.weight").shape, (Shape{704, 256}));
  EXPECT_EQ(store.info("model.layers.5.mlp.down_proj.weight").shape, (Shape{256, 704}));
  EXPECT_EQ(store.info("model.norm.weight").shape, (Shape{256}));

  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  const SafetensorsFile& file = store.shard(store.shard_of(q));
  uint16_t first_bits = 0, last_bits = 0;
  std::memcpy(&first_bits, file.raw(q), 2);
  std::memcpy(&last_bits, file.raw(q) + file.info(q).nbytes() - 2, 2);
  EXPECT_EQ(first_bits, 0x3c89);
  EXPECT_EQ(last_bits, 0x3cfa);
  const at::Tensor weight = store.load(q);
  ASSERT_EQ(weight.scalar_type(), at::kBFloat16);
  EXPECT_EQ(weight[0][0].item<float>(), 0x1.12p-6f);     // 0x3c89 << 16
  EXPECT_EQ(sequential_sum(weight), -0x1.2613477bcp+2);  // -4.594926710939035
}

// ---------------------------------------------------------------------------------------------
// Writer: layout, temporary file, misuse, I/O failures

TEST(SafetensorsWriter, HeaderIsPaddedWithSpacesToAMultipleOfEight) {
  TempDir dir;
  for (size_t name_length = 1; name_length <= 16; ++name_length) {
    SCOPED_TRACE(name_length);
    const std::string path = dir.file("t.safetensors");
    write_safetensors(path, {{std::string(name_length, 'w'), at::tensor({7.25f})}});
    const std::string bytes = read_file(path);
    const uint64_t length = header_length(bytes);
    EXPECT_EQ((8 + length) % 8, 0u);
    const std::string header = bytes.substr(8, length);
    const size_t json_end = header.rfind('}') + 1;
    EXPECT_EQ(header.find_first_not_of(' ', json_end), std::string::npos) << header;
    EXPECT_LT(header.size() - json_end, 8u);
    EXPECT_EQ(bytes.substr(8 + length), floats_as_bytes({7.25f}));  // data right after the padding
  }
}

TEST(SafetensorsWriter, HeaderMatchesHuggingFaceFormat) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  write_safetensors(path, {{"b", at::tensor({1.0f})}, {"a", at::zeros({2, 1}, at::kBFloat16)}}, {{"format", "pt"}});
  const std::string bytes = read_file(path);
  const std::string json = R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("a":{"dtype":"BF16","shape":[2,1],"data_offsets":[4,8]}})";
  EXPECT_EQ(bytes.substr(8, header_length(bytes)), json + std::string((8 - json.size() % 8) % 8, ' '));
}

TEST(SafetensorsWriter, NoMetadataMeansNoMetadataEntry) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  write_safetensors(path, {{"x", at::tensor({1.0f})}});
  EXPECT_FALSE(contains(read_file(path), "__metadata__"));
  EXPECT_TRUE(SafetensorsFile::open(path)->metadata().empty());
}

TEST(SafetensorsWriter, FinalPathAppearsOnlyAtCommit) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  SafetensorsWriter writer(path, {{"a", DType::F32, {2}}, {"b", DType::F16, {}}});
  EXPECT_TRUE(fs::exists(path + ".tmp"));
  writer.put("b", at::scalar_tensor(1.5, at::kHalf));
  EXPECT_FALSE(writer.complete());
  writer.put("a", at::tensor({1.0f, 2.0f}));
  EXPECT_TRUE(writer.complete());
  EXPECT_FALSE(fs::exists(path));
  writer.commit();
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(SafetensorsFile::open(path)->load("b").item<float>(), 1.5f);
}

TEST(SafetensorsWriter, AbandonedWriterLeavesNoFileAndKeepsTheOldOne) {
  TempDir dir;
  const std::string fresh = dir.file("fresh.safetensors");
  const std::string existing = dir.file("existing.safetensors");
  write_file(existing, "previous contents");
  {
    SafetensorsWriter never_filled(fresh, {{"a", DType::F32, {2}}});
    SafetensorsWriter half_filled(existing, {{"a", DType::F32, {2}}, {"b", DType::F32, {1}}});
    half_filled.put("a", at::tensor({1.0f, 2.0f}));
  }
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_FALSE(fs::exists(fresh + ".tmp"));
  EXPECT_EQ(read_file(existing), "previous contents");
  EXPECT_FALSE(fs::exists(existing + ".tmp"));
}

TEST(SafetensorsWriter, CommitReplacesAnExistingFile) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  write_file(path, "previous contents");
  write_safetensors(path, {{"x", at::tensor({3.0f})}});
  EXPECT_EQ(SafetensorsFile::open(path)->load("x").item<float>(), 3.0f);
}

TEST(SafetensorsWriter, MisuseIsALogicError) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  EXPECT_THROW(SafetensorsWriter(path, {{"a", DType::F32, {1}}, {"a", DType::F32, {1}}}), std::logic_error);
  EXPECT_THROW(SafetensorsWriter(path, {{"a", DType::F32, {-1}}}), std::logic_error);
  EXPECT_THROW(SafetensorsWriter(path, {{"__metadata__", DType::F32, {1}}}), std::logic_error);

  SafetensorsWriter writer(path, {{"a", DType::F32, {2}}, {"b", DType::BF16, {2, 2}}});
  EXPECT_THROW(writer.put("nope", at::tensor({1.0f})), std::logic_error);
  EXPECT_THROW(writer.put("a", at::tensor({1.0f, 2.0f, 3.0f})), std::logic_error);  // wrong shape
  EXPECT_THROW(writer.put("b", at::zeros({4})), std::logic_error);                  // same numel, wrong shape
  EXPECT_THROW(writer.put("a", at::Tensor()), std::logic_error);
  const float two[2] = {1.0f, 2.0f};
  EXPECT_THROW(writer.put_raw("a", reinterpret_cast<const uint8_t*>(two), 4), std::logic_error);  // wrong size
  writer.put("a", at::tensor({1.0f, 2.0f}));
  EXPECT_THROW(writer.put("a", at::tensor({1.0f, 2.0f})), std::logic_error);  // twice
  EXPECT_THROW(writer.commit(), std::logic_error);                            // "b" missing
  EXPECT_FALSE(fs::exists(path));
  writer.put("b", at::zeros({2, 2}));
  writer.commit();
  EXPECT_THROW(writer.commit(), std::logic_error);
}

TEST(SafetensorsWriter, UncreatableOutputIsAnInputErrorNamingThePath) {
  TempDir dir;
  const std::string path = dir.file("no-such-dir/t.safetensors");
  const std::string message = input_error_of([&] { SafetensorsWriter writer(path, {{"a", DType::F32, {1}}}); });
  EXPECT_TRUE(contains(message, path)) << message;
  EXPECT_TRUE(contains(message, "cannot create")) << message;
}

TEST(SafetensorsWriter, WriteFailureIsAnInputErrorAndLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const at::Tensor big = at::ones({256, 1024});  // 1 MiB
  {
    FileSizeLimit limit(64 * 1024);
    SafetensorsWriter writer(path, {{"big", DType::F32, {256, 1024}}});
    const std::string message = input_error_of([&] { writer.put("big", big); });
    EXPECT_TRUE(contains(message, path)) << message;
    EXPECT_TRUE(contains(message, "cannot write")) << message;
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  {  // the header itself does not fit: the constructor fails and cleans up
    FileSizeLimit limit(16);
    const std::string message = input_error_of([&] {
      SafetensorsWriter writer(path, {{"big", DType::F32, {256, 1024}}});
    });
    EXPECT_TRUE(contains(message, path)) << message;
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_FALSE(fs::exists(path));
}

// ---------------------------------------------------------------------------------------------
// Header validation: each malformed file is an InputError naming the file and what is wrong.

class HeaderValidation : public ::testing::Test {
 protected:
  // The InputError message opening `bytes` gives.
  std::string rejection(const std::string& bytes) {
    write_file(path_, bytes);
    return input_error_of([&] { SafetensorsFile::open(path_); });
  }

  void expect_rejected(const std::string& header, const std::string& data, const std::string& phrase) {
    SCOPED_TRACE(header);
    const std::string message = rejection(file_bytes(header, data));
    EXPECT_TRUE(contains(message, path_ + ": ")) << message;
    EXPECT_TRUE(contains(message, phrase)) << message;
    EXPECT_FALSE(contains(message, "\n")) << message;
  }

  TempDir dir_;
  std::string path_ = dir_.file("bad.safetensors");
};

const std::string kEightBytes(8, '\0');

TEST_F(HeaderValidation, FileShorterThanTheLengthPrefix) {
  for (const std::string bytes : {"", "abc", "1234567"}) {
    const std::string message = rejection(bytes);
    EXPECT_TRUE(contains(message, path_)) << message;
    EXPECT_TRUE(contains(message, "too short")) << message;
  }
}

TEST_F(HeaderValidation, HeaderLengthPastTheEndOfTheFile) {
  for (uint64_t length : {uint64_t{3}, uint64_t{1000}, uint64_t{1} << 63, ~uint64_t{0}}) {
    const std::string message = rejection(le64(length) + "{}");
    EXPECT_TRUE(contains(message, path_)) << message;
    EXPECT_TRUE(contains(message, "runs past the end of the file")) << message;
  }
}

TEST_F(HeaderValidation, HeaderNotJson) {
  expect_rejected("", "", "not valid JSON");
  expect_rejected("{\"x\": ", "", "not valid JSON");
  expect_rejected("{}\n\x01garbage", "", "not valid JSON");
  expect_rejected("{\"\xff\xfe\": 1}", "", "not valid JSON");  // not UTF-8
}

TEST_F(HeaderValidation, HeaderNotAnObject) {
  expect_rejected("[1, 2]", "", "must be a JSON object (found array)");
  expect_rejected("\"F32\"", "", "must be a JSON object (found string)");
}

TEST_F(HeaderValidation, DuplicateTensorName) {
  const std::string entry = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  expect_rejected(R"({"x":)" + entry + R"(,"x":)" + entry + "}", kEightBytes, "names 'x' twice");
}

TEST_F(HeaderValidation, MetadataNotAnObjectOfStrings) {
  expect_rejected(R"({"__metadata__":"pt"})", "", "__metadata__ must be an object of strings (found string)");
  expect_rejected(R"({"__metadata__":{"format":1}})", "", "__metadata__ value for 'format' must be a string");
}

TEST_F(HeaderValidation, EntryNotAnObject) {
  expect_rejected(R"({"x":[0,8]})", kEightBytes, "tensor 'x': entry must be an object");
}

TEST_F(HeaderValidation, EntryMissingAField) {
  expect_rejected(R"({"x":{"shape":[2],"data_offsets":[0,8]}})", kEightBytes, "tensor 'x': entry has no 'dtype'");
  expect_rejected(R"({"x":{"dtype":"F32","data_offsets":[0,8]}})", kEightBytes, "tensor 'x': entry has no 'shape'");
  expect_rejected(R"({"x":{"dtype":"F32","shape":[2]}})", kEightBytes, "tensor 'x': entry has no 'data_offsets'");
}

TEST_F(HeaderValidation, FieldsOfTheWrongJsonType) {
  const std::string data = kEightBytes;
  expect_rejected(R"({"x":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", data, "'dtype' must be a string");
  for (const std::string shape : {R"("2")", "[2.0]", "[true]", R"(["2"])", "null"}) {
    expect_rejected(R"({"x":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,8]}})", data,
                    "'shape' must be an array of integers");
  }
  for (const std::string offsets : {"[0]", "[0,8,8]", R"(["0","8"])", "[0.0,8]", "[-8,0]", "{}"}) {
    expect_rejected(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":)" + offsets + "}}", data,
                    "'data_offsets' must be two non-negative integers");
  }
}

TEST_F(HeaderValidation, UnknownDtypeIsNamed) {
  for (const std::string dtype : {"I64", "F64", "U8", "f32", "F8_E4M3"}) {
    expect_rejected(R"({"x":{"dtype":")" + dtype + R"(","shape":[1],"data_offsets":[0,8]}})", kEightBytes,
                    "tensor 'x' has dtype " + dtype + "; crepe reads F32, F16, BF16");
  }
}

TEST_F(HeaderValidation, NegativeDimension) {
  expect_rejected(R"({"x":{"dtype":"F32","shape":[-2,-1],"data_offsets":[0,8]}})", kEightBytes,
                  "tensor 'x': negative dimension -2");
}

TEST_F(HeaderValidation, ShapesTooLargeToCount) {
  // 2^63 does not fit int64_t; 2^32 x 2^32 x 16 x 4 bytes overflows uint64_t.
  expect_rejected(R"({"x":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})", kEightBytes,
                  "too large");
  expect_rejected(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", kEightBytes,
                  "tensor 'x': shape [4294967296, 4294967296, 16] is too large");
  // Overflow that wraps to exactly the stored size must not pass either: 2^62 x 4 bytes = 2^64 = 0.
  expect_rejected(R"({"x":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", "", "too large");
}

TEST_F(HeaderValidation, BeginAfterEnd) {
  expect_rejected(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", kEightBytes,
                  "tensor 'x': data_offsets [8, 0] begin after end");
}

TEST_F(HeaderValidation, EndPastTheDataSection) {
  expect_rejected(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", kEightBytes,
                  "tensor 'x': data_offsets [0, 16] run past the end of the data section (8 bytes)");
  expect_rejected(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})",
                  kEightBytes, "run past the end of the data section");
}

TEST_F(HeaderValidation, SizeDisagreesWithShape) {
  expect_rejected(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", kEightBytes,
                  "tensor 'x': shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8");
  expect_rejected(R"({"x":{"dtype":"BF16","shape":[],"data_offsets":[0,4]}})", kEightBytes, "needs 2 bytes");
}

TEST_F(HeaderValidation, OverlappingTensors) {
  const std::string data(12, '\0');
  expect_rejected(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  data, "tensors 'a' and 'b' overlap");
  expect_rejected(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("a":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}})",
                  data, "overlap");
  // Contained within a larger tensor, listed before it in the header.
  expect_rejected(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                  R"("b":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})",
                  data, "tensors 'b' and 'a' overlap");
}

TEST_F(HeaderValidation, DataMustBeContiguousAndEndWithTheLastTensor) {
  // As the safetensors library's own validation: no gap before, between or after the tensors.
  const std::string twelve(12, '\0');
  expect_rejected(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                  twelve, "tensor 'b' begins at byte 8 of the data section, leaving 4 bytes no tensor holds after 'a'");
  expect_rejected(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", twelve,
                  "tensor 'a' begins at byte 4 of the data section, leaving 4 bytes no tensor holds before it");
  expect_rejected(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", twelve,
                  "4 bytes follow the last tensor's data (the header accounts for 8 of the data section's 12)");
  expect_rejected(R"({})", twelve, "12 bytes follow the last tensor's data");
  // A zero-size tensor inside another's bytes is no place in the data either.
  expect_rejected(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                  R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                  twelve, "tensors 'a' and 'z' overlap");
}

TEST_F(HeaderValidation, HostileNamesStayOnOneLine) {
  const std::string message =
      rejection(file_bytes(R"({"line\nbreak":{"dtype":"I8","shape":[],"data_offsets":[0,1]}})", "x"));
  EXPECT_TRUE(contains(message, "tensor 'line?break' has dtype I8")) << message;
}

TEST_F(HeaderValidation, AcceptsScalarsZeroSizeTensorsAndExtraFields) {
  // Header in alphabetical order, data in another: tensors() follows the data. Zero-size tensors
  // take no bytes, at the place where the data they sit between meet.
  const std::string header = R"({"a_last":{"dtype":"F16","shape":[1],"data_offsets":[12,14],"extra":true},)"
                             R"("b_scalar":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                             R"("c_empty":{"dtype":"BF16","shape":[0,3],"data_offsets":[4,4]},)"
                             R"("d_pair":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
                             R"("e_empty":{"dtype":"F32","shape":[5,0],"data_offsets":[14,14]}})";
  std::string data = floats_as_bytes({-6.5f, 1.0f, 2.0f});
  data += std::string("\x00\x3c", 2);  // F16 1.0
  write_file(path_, file_bytes(header, data));
  const auto file = SafetensorsFile::open(path_);
  std::vector<std::string> order;
  for (const TensorInfo& info : file->tensors()) order.push_back(info.name);
  EXPECT_EQ(order, (std::vector<std::string>{"b_scalar", "c_empty", "d_pair", "a_last", "e_empty"}));
  EXPECT_EQ(file->load("b_scalar").dim(), 0);
  EXPECT_EQ(file->load("b_scalar").item<float>(), -6.5f);
  EXPECT_EQ(file->load("a_last").item<float>(), 1.0f);
  EXPECT_EQ(file->load("d_pair")[1].item<float>(), 2.0f);
  EXPECT_EQ(file->load("c_empty").sizes(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(file->load("e_empty").numel(), 0);
  EXPECT_TRUE(file->contains("c_empty"));
  EXPECT_FALSE(file->contains("missing"));
  const std::string message = input_error_of([&] { file->info("missing"); });
  EXPECT_TRUE(contains(message, path_ + ": no tensor 'missing'")) << message;
}

TEST_F(HeaderValidation, EveryTruncationIsRejected) {
  // The last tensor ends at the end of the file, so every proper prefix is missing some bytes.
  const std::string whole_path = dir_.file("whole.safetensors");
  write_safetensors(whole_path, {{"a", at::arange(6, at::kFloat)}, {"b", at::ones({3}, at::kBFloat16)}}, {{"k", "v"}});
  const std::string whole = read_file(whole_path);
  for (size_t length = 0; length < whole.size(); ++length) {
    const std::string message = rejection(whole.substr(0, length));
    EXPECT_TRUE(contains(message, path_)) << length << ": " << message;
  }
}

TEST_F(HeaderValidation, CorruptedHeaderBytesGiveInputErrorsOrValidTensors) {
  const std::string whole_path = dir_.file("whole.safetensors");
  write_safetensors(whole_path, {{"a", at::arange(6, at::kFloat)}, {"b", at::ones({3}, at::kBFloat16)}}, {{"k", "v"}});
  const std::string whole = read_file(whole_path);
  const uint64_t header_end = 8 + header_length(whole);
  int opened = 0;
  for (size_t position = 0; position < header_end; ++position) {
    for (char replacement : {'\0', '"', '}', '9', '-', '[', '\xff'}) {
      std::string bytes = whole;
      bytes[position] = replacement;
      write_file(path_, bytes);
      try {
        const auto file = SafetensorsFile::open(path_);
        for (const TensorInfo& info : file->tensors()) EXPECT_EQ(file->load(info.name).nbytes(), info.nbytes());
        ++opened;
      } catch (const InputError&) {
        // expected for most corruptions; anything else escapes and fails the test
      }
    }
  }
  EXPECT_GT(opened, 0);  // e.g. a digit changed inside the metadata value still opens
}

// ---------------------------------------------------------------------------------------------
// TensorStore: single-file and sharded checkpoints

class ShardedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    // Shard 2 holds the alphabetically first tensor, so shard order cannot come from the weight map.
    write_safetensors(dir_.file(kShard1), {{"b", at::tensor({1.0f, 2.0f})}, {"c", at::eye(2).to(at::kBFloat16)}});
    write_safetensors(dir_.file(kShard2),
                      {{"a", at::tensor({0.5f, 0.25f, 0.125f}).to(at::kHalf)}, {"stray", at::zeros({1})}});
  }

  void write_index(const std::string& weight_map) {
    write_file(index_path(), R"({"metadata":{"total_size":30},"weight_map":)" + weight_map + "}");
  }
  std::string index_path() const { return dir_.file("model.safetensors.index.json"); }

  static constexpr const char* kShard1 = "model-00001-of-00002.safetensors";
  static constexpr const char* kShard2 = "model-00002-of-00002.safetensors";
  static constexpr const char* kWeightMap =
      R"({"a":"model-00002-of-00002.safetensors","b":"model-00001-of-00002.safetensors",)"
      R"("c":"model-00001-of-00002.safetensors"})";
  TempDir dir_;
};

TEST_F(ShardedCheckpoint, LoadsTensorsFromEveryShard) {
  write_index(kWeightMap);
  const TensorStore store = TensorStore::open_dir(dir_.path());
  EXPECT_TRUE(store.is_sharded());
  EXPECT_EQ(store.dir(), dir_.path());
  EXPECT_EQ(store.shard_files(), (std::vector<std::string>{kShard1, kShard2}));
  EXPECT_EQ(store.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(store.shard_of("a"), 1u);
  EXPECT_EQ(store.shard_of("b"), 0u);
  expect_same_tensor(store.load("a"), at::tensor({0.5f, 0.25f, 0.125f}).to(at::kHalf));
  expect_same_tensor(store.load("b"), at::tensor({1.0f, 2.0f}));
  expect_same_tensor(store.load("c"), at::eye(2).to(at::kBFloat16));
  EXPECT_EQ(store.info("c").dtype, DType::BF16);
  // In a shard but not in the weight map: ignored, as Hugging Face does.
  EXPECT_TRUE(store.shard(1).contains("stray"));
  EXPECT_FALSE(store.contains("stray"));
  const std::string message = input_error_of([&] { store.load("stray"); });
  EXPECT_TRUE(contains(message, dir_.path() + ": checkpoint has no tensor 'stray'")) << message;
}

TEST_F(ShardedCheckpoint, ASingleFileIsPreferredOverAnIndexAsTransformersDoes) {
  write_index(kWeightMap);
  write_safetensors(dir_.file("model.safetensors"), {{"other", at::zeros({1})}});
  const TensorStore store = TensorStore::open_dir(dir_.path());
  EXPECT_FALSE(store.is_sharded());
  EXPECT_EQ(store.names(), std::vector<std::string>{"other"});
  EXPECT_EQ(store.shard_files(), std::vector<std::string>{"model.safetensors"});
}

TEST_F(ShardedCheckpoint, MissingShardIsAnErrorNamingTheIndex) {
  write_index(R"({"a":"model-00002-of-00002.safetensors","z":"model-00003-of-00003.safetensors"})");
  const std::string message = input_error_of([&] { TensorStore::open_dir(dir_.path()); });
  EXPECT_TRUE(contains(message, index_path() + ": ")) << message;
  EXPECT_TRUE(contains(message, "shard 'model-00003-of-00003.safetensors', which does not exist")) << message;
}

TEST_F(ShardedCheckpoint, TensorMissingFromItsShardIsAnErrorNamingTheIndex) {
  write_index(R"({"a":"model-00002-of-00002.safetensors","b":"model-00002-of-00002.safetensors"})");
  const std::string message = input_error_of([&] { TensorStore::open_dir(dir_.path()); });
  EXPECT_TRUE(contains(message, index_path() + ": ")) << message;
  EXPECT_TRUE(contains(message, "tensor 'b' to shard 'model-00002-of-00002.safetensors', which does not contain it"))
      << message;
}

TEST_F(ShardedCheckpoint, CorruptShardIsAnErrorNamingTheShard) {
  write_index(kWeightMap);
  write_file(dir_.file(kShard1), "garbage");
  const std::string message = input_error_of([&] { TensorStore::open_dir(dir_.path()); });
  EXPECT_TRUE(contains(message, dir_.file(kShard1) + ": ")) << message;
}

TEST_F(ShardedCheckpoint, MalformedIndexIsAnErrorNamingTheIndex) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"weight_map\": ", "not valid JSON"},
      {"[]", "must be a JSON object (found array)"},
      {"{}", "has no \"weight_map\" object"},
      {R"({"weight_map":["a"]})", "has no \"weight_map\" object"},
      {R"({"weight_map":{"a":1}})", "weight_map entry for 'a' must be a shard file name (found number)"},
      {R"({"weight_map":{}})", "weight_map is empty"},
  };
  for (const auto& [text, phrase] : cases) {
    write_file(index_path(), text);
    const std::string message = input_error_of([&] { TensorStore::open_dir(dir_.path()); });
    EXPECT_TRUE(contains(message, index_path() + ": ")) << message;
    EXPECT_TRUE(contains(message, phrase)) << message;
  }
}

TEST(TensorStore, DirectoryWithoutACheckpointIsAnError) {
  TempDir dir;
  std::string message = input_error_of([&] { TensorStore::open_dir(dir.path()); });
  EXPECT_TRUE(contains(message, dir.path() + ": no model.safetensors or model.safetensors.index.json")) << message;
  // A PyTorch-pickle checkpoint is named as such, with what to do.
  write_file(dir.file("pytorch_model.bin.index.json"), "{}");
  message = input_error_of([&] { TensorStore::open_dir(dir.path()); });
  EXPECT_TRUE(contains(message, "(it holds pytorch_model.bin.index.json: PyTorch pickles are not read; save the model "
                                "with safetensors first")) << message;
  message = input_error_of([&] { TensorStore::open_dir(dir.file("absent")); });
  EXPECT_TRUE(contains(message, dir.file("absent") + ": not a directory")) << message;
}

TEST(TensorStore, SingleFileCheckpoint) {
  TempDir dir;
  write_safetensors(dir.file("model.safetensors"), {{"w", at::tensor({4.0f})}, {"v", at::tensor({5.0f})}});
  const TensorStore store = TensorStore::open_dir(dir.path());
  EXPECT_FALSE(store.is_sharded());
  EXPECT_EQ(store.names(), (std::vector<std::string>{"v", "w"}));
  EXPECT_EQ(store.shard_of("w"), 0u);
  EXPECT_EQ(store.load("v").item<float>(), 5.0f);
  const std::string message = input_error_of([&] { store.info("u"); });
  EXPECT_TRUE(contains(message, "no tensor 'u'")) << message;
}

}  // namespace
}  // namespace crepe::io
