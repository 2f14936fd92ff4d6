// Fuzzes what dqe serve does with a request's bytes before any model sees them: the v2 infer
// body (parse_v2_request), the lines it makes read back as score reads them (JsonlReader over
// text in memory), and the access log's masking. A bad body must end in BadRequest, a bad line
// in a dqe::Error; lines made from a body the parser took must be JSON objects; masked text
// holds no ASCII digit. Anything else escaping, a crash, a hang or a sanitizer report is a bug.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "dqe/errors.h"
#include "dqe/jsonl_reader.h"
#include "serve/mask.h"
#include "serve/v2.h"

namespace {

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  const std::string masked = dqe::service::mask_payload(body);
  for (const char c : masked) FUZZ_CHECK(c < '0' || c > '9');

  dqe::FieldMap fields;
  const dqe::service::V2Inputs inputs = dqe::service::v2_inputs(fields, "category");
  dqe::service::V2Request request;
  try {
    request = dqe::service::parse_v2_request(body, inputs, 64);
  } catch (const dqe::service::BadRequest& e) {
    FUZZ_CHECK(e.status() == 400 || e.status() == 413);
    return 0;
  }
  std::string text;
  for (const std::string& line : request.lines) {
    const nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
    FUZZ_CHECK(parsed.is_object());
    text += line + "\n";
  }
  dqe::ReaderOptions ro;
  ro.fields = fields;
  ro.route_field = "category";
  ro.max_bad_lines = 1000;
  try {
    dqe::JsonlReader reader = dqe::JsonlReader::of_text("request", text, ro);
    dqe::Record record;
    while (reader.next(record)) FUZZ_CHECK(!record.route.empty());
  } catch (const dqe::Error&) {
  }
  return 0;
}
