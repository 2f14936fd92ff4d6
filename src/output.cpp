#include "dqe/output.h"

#include "detail/output_file.h"

namespace dqe {

void write_file_atomic(const std::string& path, const std::string& text) {
  detail::OutputFile out(path);
  out.stream().write(text.data(), static_cast<std::streamsize>(text.size()));
  out.commit();
}

}  // namespace dqe
