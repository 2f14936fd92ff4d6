// Fuzzes dqe::load_safetensors on arbitrary file contents. A bad file must be rejected with
// a dqe::Error (ModelError/IoError); a c10::Error or any other exception escaping, a crash, a
// sanitizer report or an allocation beyond the file's size is a bug. A file that loads must
// hold exactly the tensors its header declares, with their shapes, and F32/I64 data intact.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dqe/errors.h"
#include "io/safetensors.h"

namespace {

// A documented property of the reader does not hold: report it as a crash.
#define FUZZ_CHECK(cond)                                                         \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

// $TMPDIR when set (scripts/check/fuzz.sh points it into a directory it removes, so that nothing
// is left behind when a target crashes), else /dev/shm, which keeps the per-input rewrite off
// the disk.
std::string temp_dir() {
  const char* tmpdir = std::getenv("TMPDIR");
  if (tmpdir != nullptr && *tmpdir != '\0') return tmpdir;
  return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

class TempFile {
 public:
  TempFile() {
    path_ = temp_dir() + "/dqe-fuzz-safetensors-XXXXXX";
    fd_ = mkstemp(path_.data());
    if (fd_ < 0) {
      std::perror("mkstemp");
      std::abort();
    }
  }
  ~TempFile() {
    close(fd_);
    unlink(path_.c_str());
  }
  void write(const uint8_t* data, size_t size) {
    if (ftruncate(fd_, 0) != 0 || pwrite(fd_, data, size, 0) != static_cast<ssize_t>(size)) {
      std::perror("write");
      std::abort();
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Compares a loaded tensor with what the header declares (shape, element type, and for
// dtypes loaded without conversion, the bytes themselves).
void check_tensor(const std::string& name, const nlohmann::json& info, const torch::Tensor& t, const uint8_t* data) {
  std::vector<int64_t> shape;
  for (const auto& d : info.at("shape")) shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
  if (t.sizes().vec() != shape) {
    std::fprintf(stderr, "tensor \"%s\": loaded shape differs from the declared one\n", name.c_str());
    std::abort();
  }
  const std::string dtype = info.at("dtype").get<std::string>();
  const bool floating = dtype == "F32" || dtype == "F16" || dtype == "BF16" || dtype == "F64";
  FUZZ_CHECK(t.scalar_type() == (floating ? torch::kFloat32 : torch::kInt64));
  FUZZ_CHECK(t.is_contiguous());
  const uint64_t begin = info.at("data_offsets").at(0).get<uint64_t>();
  const uint64_t end = info.at("data_offsets").at(1).get<uint64_t>();
  if (dtype == "F32" || dtype == "I64") {
    FUZZ_CHECK(static_cast<uint64_t>(t.nbytes()) == end - begin);
    FUZZ_CHECK(t.numel() == 0 || std::memcmp(t.data_ptr(), data + begin, end - begin) == 0);
  }
  if (dtype == "BOOL") {
    // A bool is 0 or 1 whatever byte the file holds.
    const int64_t* v = t.data_ptr<int64_t>();
    for (int64_t i = 0; i < t.numel(); ++i) FUZZ_CHECK(v[i] == (data[begin + static_cast<uint64_t>(i)] != 0));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static TempFile file;
  file.write(data, size);
  std::map<std::string, torch::Tensor> tensors;
  try {
    tensors = dqe::load_safetensors(file.path());
  } catch (const dqe::Error&) {
    return 0;  // rejected as documented
  }

  // Loaded: the header was valid, so it can be read here to check the result against it.
  FUZZ_CHECK(size >= 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  FUZZ_CHECK(header_len <= size - 8);
  const nlohmann::json header =
      nlohmann::json::parse(data + 8, data + 8 + header_len, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(header.is_object());
  const uint8_t* body = data + 8 + header_len;
  size_t declared = 0;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    ++declared;
    const auto found = tensors.find(it.key());
    FUZZ_CHECK(found != tensors.end());
    check_tensor(it.key(), *it, found->second, body);
  }
  FUZZ_CHECK(tensors.size() == declared);
  return 0;
}
