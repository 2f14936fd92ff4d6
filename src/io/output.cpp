#include "io/output.h"

#include <sys/stat.h>

#include <filesystem>

#include "dqe/errors.h"
#include "io/output_file.h"

namespace dqe {

void write_file_atomic(const std::string& path, const std::string& text) {
  detail::OutputFile out(path);
  out.stream().write(text.data(), static_cast<std::streamsize>(text.size()));
  out.commit();
}

namespace {

// What a path stands for when compared with another: equal identities are the same file.
struct Identity {
  enum Kind { kNone, kFile, kPath, kStdout } kind = kNone;
  dev_t dev = 0;
  ino_t ino = 0;
  std::string path;  // kPath: an output that does not exist yet, made absolute

  bool same_as(const Identity& other) const {
    if (kind == kNone || kind != other.kind) return false;
    if (kind == kFile) return dev == other.dev && ino == other.ino;
    if (kind == kPath) return path == other.path;
    return true;
  }
};

Identity identity_of(const FileUse& use) {
  Identity id;
  if (use.path.empty()) return id;
  if (use.path == "-") {
    if (use.output) id.kind = Identity::kStdout;
    return id;
  }
  struct stat st {};
  if (::stat(use.path.c_str(), &st) == 0) {
    if (S_ISREG(st.st_mode)) {
      id.kind = Identity::kFile;
      id.dev = st.st_dev;
      id.ino = st.st_ino;
    }
    return id;
  }
  // An input that does not exist fails when it is opened; an output that does not exist
  // yet can only collide with another output by name.
  if (!use.output) return id;
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::weakly_canonical(use.path, ec);
  id.kind = Identity::kPath;
  id.path = ec ? use.path : absolute.string();
  return id;
}

}  // namespace

void check_no_aliases(const std::vector<FileUse>& uses) {
  std::vector<Identity> ids;
  ids.reserve(uses.size());
  for (const FileUse& use : uses) ids.push_back(identity_of(use));
  for (size_t i = 0; i < uses.size(); ++i) {
    for (size_t j = i + 1; j < uses.size(); ++j) {
      if (!(uses[i].output || uses[j].output) || !ids[i].same_as(ids[j])) continue;
      const FileUse& out = uses[i].output ? uses[i] : uses[j];
      const FileUse& other = uses[i].output ? uses[j] : uses[i];
      throw ConfigError(out.flag + " " + out.path + " names the same file as " + other.flag + " " + other.path);
    }
  }
}

}  // namespace dqe
