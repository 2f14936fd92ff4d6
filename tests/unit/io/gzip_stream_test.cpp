#include "io/gzip_stream.h"

#include <gtest/gtest.h>

#include <istream>
#include <random>
#include <sstream>
#include <string>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe::detail {
namespace {

class GzipStreamTest : public ::testing::Test {
 protected:
  // Everything GzipReadBuf reads from a file holding bytes; "IoError: <what>" when it throws.
  std::string read_back(const std::string& bytes) {
    const std::string path = dir_.path("in.jsonl.gz");
    test::write_text(path, bytes);
    try {
      GzipReadBuf buf(path);
      std::string out;
      char chunk[4096];
      for (std::streamsize n; (n = buf.sgetn(chunk, sizeof chunk)) > 0;) out.append(chunk, static_cast<size_t>(n));
      return out;
    } catch (const IoError& e) {
      return std::string("IoError: ") + e.what();
    }
  }
  std::string path() const { return dir_.path("in.jsonl.gz"); }

  test::TempDir dir_;
};

std::string many_lines(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) text += "{\"query\":\"q" + std::to_string(i) + "\",\"title\":\"t\"}\n";
  return text;
}

TEST_F(GzipStreamTest, ReadsAWholeMember) {
  const std::string text = many_lines(20000);  // several buffers in and out
  EXPECT_EQ(read_back(test::gzip(text)), text);
  EXPECT_EQ(read_back(test::gzip("")), "");
}

TEST_F(GzipStreamTest, ReadsConcatenatedMembers) {
  EXPECT_EQ(read_back(test::gzip("a\n") + test::gzip("b\n") + test::gzip("") + test::gzip("c\n")), "a\nb\nc\n");
}

TEST_F(GzipStreamTest, PassesThroughAFileWithoutTheGzipMagic) {
  EXPECT_EQ(read_back("{\"plain\":1}\n"), "{\"plain\":1}\n");
  EXPECT_EQ(read_back(""), "");
}

// zlib's gzread returned what it had and then a clean end of file: a copy cut short read as
// a complete, shorter file.
TEST_F(GzipStreamTest, EveryTruncationIsAnError) {
  const std::string whole = test::gzip(many_lines(300));
  const std::string truncated = "IoError: " + path() + ": truncated gzip stream";
  // Every cut: in the header, in the data (many of them at a line boundary), in the trailer.
  for (size_t cut = 2; cut < whole.size(); ++cut)
    ASSERT_EQ(read_back(whole.substr(0, cut)).rfind(truncated, 0), 0u) << "cut at " << cut << " of " << whole.size();
  // The trailer alone missing (its CRC and length): all data there, still not complete.
  EXPECT_EQ(read_back(whole.substr(0, whole.size() - 8)).rfind(truncated, 0), 0u);
  // A second member cut short.
  EXPECT_EQ(read_back(whole + whole.substr(0, whole.size() / 2)).rfind(truncated, 0), 0u);
}

TEST_F(GzipStreamTest, TrailingBytesThatAreNotAMemberAreAnError) {
  const std::string whole = test::gzip("a\n");
  const std::string junk = "IoError: " + path() + ": trailing data after the last gzip member";
  EXPECT_EQ(read_back(whole + "junk"), junk);
  EXPECT_EQ(read_back(whole + std::string(512, '\0')), junk);
  EXPECT_EQ(read_back(whole + "\x1f"), junk);
}

TEST_F(GzipStreamTest, CorruptDataIsAnError) {
  std::string whole = test::gzip(many_lines(100));
  whole[whole.size() / 2] ^= 0x55;
  whole[whole.size() / 2 + 1] ^= 0x55;
  EXPECT_EQ(read_back(whole).rfind("IoError: " + path() + ": ", 0), 0u);
  // A wrong CRC in the trailer.
  std::string bad_crc = test::gzip("a\n");
  bad_crc[bad_crc.size() - 8] ^= 1;
  EXPECT_EQ(read_back(bad_crc).rfind("IoError: " + path() + ": corrupt gzip data", 0), 0u);
}

TEST_F(GzipStreamTest, MissingFileNamesIt) {
  try {
    GzipReadBuf buf(dir_.path("missing.gz"));
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()), dir_.path("missing.gz") + ": cannot open (No such file or directory)");
  }
}

TEST_F(GzipStreamTest, WriteBufCompressesIntoItsSink) {
  std::stringbuf sink;
  const std::string text = many_lines(5000);
  {
    GzipWriteBuf gz(sink);
    std::ostream out(&gz);
    out << text;
    out.flush();
    EXPECT_TRUE(gz.close());
  }
  EXPECT_EQ(read_back(sink.str()), text);
}

// A sink that refuses bytes after the first few KiB, as a closed pipe does.
class RefusingBuf : public std::streambuf {
 protected:
  std::streamsize xsputn(const char*, std::streamsize n) override {
    taken_ += n;
    return taken_ > 4096 ? 0 : n;
  }
  int_type overflow(int_type ch) override { return xsputn(nullptr, 1) == 1 ? ch : traits_type::eof(); }

 private:
  std::streamsize taken_ = 0;
};

TEST_F(GzipStreamTest, WriteBufFailsWhenItsSinkDoes) {
  RefusingBuf sink;
  GzipWriteBuf gz(sink);
  std::ostream out(&gz);
  // Random bytes do not compress: far more than the sink takes reaches it.
  std::mt19937 rng(7);
  std::string noise;
  for (int i = 0; i < 200000; ++i) noise += static_cast<char>(rng());
  out << noise;
  EXPECT_FALSE(gz.close());
  EXPECT_FALSE(gz.ok());
}

}  // namespace
}  // namespace dqe::detail
