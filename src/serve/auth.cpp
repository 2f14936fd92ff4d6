#include "serve/auth.h"

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "dqe/errors.h"

namespace dqe::service {

namespace {

std::array<uint8_t, 32> sha256(std::string_view text) {
  std::array<uint8_t, 32> out{};
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), out.data(), &size, EVP_sha256(), nullptr) != 1 || size != out.size())
    throw Error("SHA-256 failed in OpenSSL");
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string sha256_hex(std::string_view text) {
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (const uint8_t b : sha256(text)) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return hex;
}

const char* role_name(Role role) { return role == Role::kAdmin ? "admin" : "score"; }

TokenTable TokenTable::read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot read the token file");
  TokenTable table;
  std::set<std::string> names, digests;
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    const std::string where = path + ":" + std::to_string(number) + ": ";
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream words(line);
    std::string name, hex, role, extra;
    words >> name >> hex >> role;
    if (role.empty() || (words >> extra))
      throw ConfigError(where + "expected three words, NAME SHA256_HEX_OF_TOKEN ROLE");
    Client client;
    client.name = name;
    if (hex.size() != 64) throw ConfigError(where + "the digest must be 64 hexadecimal digits (sha256sum of the token)");
    for (size_t i = 0; i < 32; ++i) {
      const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) throw ConfigError(where + "the digest must be 64 hexadecimal digits (sha256sum of the token)");
      client.digest[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    if (role == "score") client.role = Role::kScore;
    else if (role == "admin") client.role = Role::kAdmin;
    else throw ConfigError(where + "unknown role \"" + role + "\" (score or admin)");
    if (!names.insert(name).second) throw ConfigError(where + "client \"" + name + "\" is named twice");
    for (char& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!digests.insert(hex).second) throw ConfigError(where + "this token's digest is given twice");
    table.clients_.push_back(std::move(client));
  }
  if (in.bad()) throw IoError(path + ": read failed");
  if (table.clients_.empty()) throw ConfigError(path + ": names no client (every request would get 401)");
  return table;
}

const Client* TokenTable::find(std::string_view token) const {
  const std::array<uint8_t, 32> digest = sha256(token);
  const Client* found = nullptr;
  for (const Client& c : clients_)
    if (CRYPTO_memcmp(c.digest.data(), digest.data(), digest.size()) == 0) found = &c;
  return found;
}

std::optional<std::string> bearer_token(std::string_view header) {
  constexpr std::string_view scheme = "bearer ";
  if (header.size() <= scheme.size()) return std::nullopt;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return std::nullopt;
  std::string_view token = header.substr(scheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return std::string(token);
}

}  // namespace dqe::service
