// Access control for the service: clients named in a token file, each with a role, who send
// "Authorization: Bearer TOKEN". The file holds only SHA-256 digests of the tokens, so that it
// gives nothing away when read; a presented token is hashed and compared with every entry in
// constant time (no early exit: the time taken says nothing about which digest came close).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dqe::service {

// score: inference and model metadata; admin: also /admin/reload.
enum class Role { kScore, kAdmin };

struct Client {
  std::string name;
  std::array<uint8_t, 32> digest{};
  Role role = Role::kScore;
};

// SHA-256 of text, as 64 lowercase hexadecimal digits (OpenSSL's).
std::string sha256_hex(std::string_view text);

class TokenTable {
 public:
  // Reads "NAME SHA256_HEX ROLE" lines; blank lines and lines starting with '#' are skipped.
  // Throws ConfigError "path:line: problem" for a malformed line, a name or digest given twice,
  // an unknown role; IoError when the file cannot be read; ConfigError when it names no client.
  static TokenTable read(const std::string& path);

  // The client whose digest is the token's, or null.
  const Client* find(std::string_view token) const;
  size_t size() const { return clients_.size(); }

 private:
  std::vector<Client> clients_;
};

// The token of an Authorization header's value "Bearer TOKEN" (scheme case-insensitive), or
// nothing for another scheme or an empty token.
std::optional<std::string> bearer_token(std::string_view header);

// May a client of this role call a route that needs `needed`? admin may do all that score may.
inline bool allows(Role role, Role needed) { return role == Role::kAdmin || needed == Role::kScore; }

const char* role_name(Role role);

}  // namespace dqe::service
