#include "io/safetensors.h"

#include <gtest/gtest.h>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe {
namespace {

// Writes a safetensors file by hand: header text and raw data bytes.
void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  std::string blob;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) blob.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  test::write_text(path, blob + header + data);
}

std::string load_error(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const ModelError& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, RoundTripKeepsNamesShapesAndValues) {
  test::TempDir dir;
  auto a = torch::randn({3, 4});
  auto b = torch::arange(5, torch::kInt64);
  save_safetensors(dir.path("m.safetensors"), {{"b.weight", b}, {"a", a}});
  auto loaded = load_safetensors(dir.path("m.safetensors"));
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_TRUE(torch::equal(loaded["a"], a));
  EXPECT_TRUE(torch::equal(loaded["b.weight"], b));
}

TEST(Safetensors, ReadsHalfPrecisionAsFloat32) {
  test::TempDir dir;
  // bf16 1.0 = 0x3F80, f16 2.0 = 0x4000 (little-endian bytes).
  write_raw(dir.path("h.safetensors"),
            R"({"x":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},"y":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}})",
            std::string("\x80\x3f\x00\x40", 4));
  auto t = load_safetensors(dir.path("h.safetensors"));
  EXPECT_EQ(t["x"].scalar_type(), torch::kFloat32);
  EXPECT_FLOAT_EQ(t["x"].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(t["y"].item<float>(), 2.0f);
}

TEST(Safetensors, RejectsMalformedFilesNamingFileAndTensor) {
  test::TempDir dir;
  const std::string p = dir.path("bad.safetensors");
  test::write_text(p, "abc");
  EXPECT_NE(load_error(p).find("too short"), std::string::npos);

  std::string blob(8, '\0');
  blob[0] = '\xff';
  blob[5] = '\x01';  // header length far past the end of the file
  test::write_text(p, blob + "{}");
  EXPECT_NE(load_error(p).find("implausibly large"), std::string::npos);

  write_raw(p, "{not json", "");
  EXPECT_NE(load_error(p).find("not valid JSON"), std::string::npos);

  write_raw(p, R"({"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0'));
  EXPECT_NE(load_error(p).find("tensor \"w\": unknown dtype"), std::string::npos);

  write_raw(p, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", std::string(8, '\0'));
  EXPECT_NE(load_error(p).find("tensor \"w\": data_offsets out of bounds"), std::string::npos);

  write_raw(p, R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0'));
  EXPECT_NE(load_error(p).find("does not match"), std::string::npos);

  write_raw(p, R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", std::string(8, '\0'));
  EXPECT_NE(load_error(p).find("overflows"), std::string::npos);

  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            std::string(12, '\0'));
  EXPECT_NE(load_error(p).find("overlap"), std::string::npos);

  // Found by the safetensors fuzzer: a size past INT64_MAX times a zero size passed the checks.
  write_raw(p, R"({"a":{"dtype":"F32","shape":[0,9223372036854775808],"data_offsets":[0,0]}})", "");
  EXPECT_NE(load_error(p).find("overflows"), std::string::npos);

  write_raw(p, R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, '\0'));
  EXPECT_NE(load_error(p).find("negative"), std::string::npos);
  EXPECT_EQ(load_error(p).rfind(p, 0), 0u);  // the message starts with the file name
}

TEST(Safetensors, ANameGivenTwiceIsRefusedAndRawBytesAreNeverEchoed) {
  test::TempDir dir;
  const std::string p = dir.path("twice.safetensors");
  // JSON parsers keep the last of two equal keys: the first tensor would vanish silently.
  write_raw(p,
            R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            std::string(8, '\0'));
  EXPECT_NE(load_error(p).find("header names tensor \"w\" twice"), std::string::npos) << load_error(p);
  // The same name in two tensors' entries is not a repetition at the top level.
  write_raw(p, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            std::string(8, '\0'));
  EXPECT_EQ(load_safetensors(p).size(), 2u);

  // Bytes outside printable ASCII are written as \xHH, never sent to the terminal as they are:
  // a raw 0xFF (not UTF-8, so not JSON) and a UTF-8 letter in a dtype.
  write_raw(p, std::string("{\"w\xff\":{}}"), "");
  const std::string bad_json = load_error(p);
  EXPECT_NE(bad_json.find("not valid JSON"), std::string::npos) << bad_json;
  EXPECT_NE(bad_json.find("\\xff"), std::string::npos) << bad_json;
  write_raw(p, std::string("{\"w\":{\"dtype\":\"F\xc3\xa9\",\"shape\":[1],\"data_offsets\":[0,4]}}"), std::string(4, '\0'));
  const std::string bad_dtype = load_error(p);
  EXPECT_NE(bad_dtype.find("unknown dtype \"F\\xc3\\xa9\""), std::string::npos) << bad_dtype;
  for (unsigned char c : bad_json + bad_dtype) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << bad_json << bad_dtype;
}

TEST(Safetensors, MissingFileIsAnIoError) {
  EXPECT_THROW(load_safetensors("/nonexistent/model.safetensors"), IoError);
}

}  // namespace
}  // namespace dqe
