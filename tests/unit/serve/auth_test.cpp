#include "serve/auth.h"

#include <fstream>

#include <gtest/gtest.h>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe::service {
namespace {

std::string write(const test::TempDir& dir, const std::string& text) {
  const std::string path = dir.path("tokens");
  std::ofstream(path) << text;
  return path;
}

// FIPS 180-2's test vectors, not OpenSSL's own output.
TEST(Auth, Sha256MatchesTheStandardsVectors) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Auth, ATokenFindsItsClientAndRole) {
  test::TempDir dir;
  const std::string path = write(dir, "# clients\n\nsearch " + sha256_hex("s3cret") + " score\nops " +
                                          sha256_hex("r00t") + " admin\r\n");
  const TokenTable table = TokenTable::read(path);
  ASSERT_EQ(table.size(), 2u);
  const Client* c = table.find("s3cret");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->name, "search");
  EXPECT_EQ(c->role, Role::kScore);
  ASSERT_NE(table.find("r00t"), nullptr);
  EXPECT_EQ(table.find("r00t")->role, Role::kAdmin);
  EXPECT_EQ(table.find("s3cre"), nullptr);
  EXPECT_EQ(table.find(sha256_hex("s3cret")), nullptr) << "the digest itself is not the token";
  EXPECT_TRUE(allows(Role::kAdmin, Role::kScore));
  EXPECT_FALSE(allows(Role::kScore, Role::kAdmin));
}

TEST(Auth, ABadTokenFileIsRefusedNamingItsLine) {
  test::TempDir dir;
  const std::string digest = sha256_hex("x");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a " + digest + "\n", ":1: expected three words"},
      {"a " + digest + " score extra\n", ":1: expected three words"},
      {"\na abc score\n", ":2: the digest must be 64"},
      {"a " + std::string(64, 'g') + " score\n", ":1: the digest must be 64"},
      {"a " + digest + " root\n", ":1: unknown role \"root\""},
      {"a " + digest + " score\na " + sha256_hex("y") + " score\n", ":2: client \"a\" is named twice"},
      {"a " + digest + " score\nb " + digest + " admin\n", ":2: this token's digest is given twice"},
      {"# nobody\n", ": names no client"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string path = write(dir, text);
    try {
      TokenTable::read(path);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(path + expected), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(TokenTable::read(dir.path("absent")), IoError);
}

TEST(Auth, TheBearerSchemeIsRead) {
  EXPECT_EQ(bearer_token("Bearer abc").value_or(""), "abc");
  EXPECT_EQ(bearer_token("bearer  abc ").value_or(""), "abc");
  EXPECT_FALSE(bearer_token("Basic abc"));
  EXPECT_FALSE(bearer_token("Bearer "));
  EXPECT_FALSE(bearer_token(""));
}

}  // namespace
}  // namespace dqe::service
