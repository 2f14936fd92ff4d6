// Fuzzes the JSON configuration readers on arbitrary bytes:
//  - model_spec_from_json (a model's config.json) and trainer_state_from_json
//    (trainer_state.json), when the bytes parse as JSON; what they accept must survive
//    to_json, a dump and a reload unchanged, since checkpoints are written that way;
//  - the command line's --config expansion and parsing, with the bytes as the config file.
// Rejections are dqe::Error (and CLI::ParseError from the command-line parser); anything
// else escaping, a crash or a sanitizer report is a bug.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli/app.h"
#include "dqe/errors.h"
#include "model/model_dir.h"
#include "model/model_spec.h"
#include "train/train_state.h"

namespace {

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
    path_ = temp_dir() + "/dqe-fuzz-config-XXXXXX";
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

// What a checkpoint writes must read back as the same thing: report a difference as a crash.
void check_round_trip(const nlohmann::ordered_json& first, const nlohmann::ordered_json& second, const char* what) {
  if (first != second) {
    std::fprintf(stderr, "%s does not survive a save and reload:\n  saved:    %s\n  reloaded: %s\n", what,
                 first.dump().c_str(), second.dump().c_str());
    std::abort();
  }
}

void fuzz_model_spec(const nlohmann::json& j) {
  dqe::ModelSpec spec;
  try {
    spec = dqe::model_spec_from_json(j, "fuzz");
  } catch (const dqe::Error&) {
    return;
  }
  const nlohmann::ordered_json saved = dqe::to_json(spec);
  // An accepted spec that its own saved form does not reproduce would break checkpoints.
  dqe::ModelSpec reloaded;
  try {
    reloaded = dqe::model_spec_from_json(nlohmann::json::parse(saved.dump()), "fuzz (reloaded)");
  } catch (const dqe::Error& e) {
    std::fprintf(stderr, "saved model spec is rejected on reload: %s\n  saved: %s\n", e.what(), saved.dump().c_str());
    std::abort();
  }
  check_round_trip(saved, dqe::to_json(reloaded), "model spec");
}

void fuzz_trainer_state(const nlohmann::json& j) {
  dqe::TrainerState state;
  try {
    state = dqe::trainer_state_from_json(j, "fuzz");
  } catch (const dqe::Error&) {
    return;
  }
  const nlohmann::ordered_json saved = dqe::to_json(state);
  dqe::TrainerState reloaded;
  try {
    reloaded = dqe::trainer_state_from_json(nlohmann::json::parse(saved.dump()), "fuzz (reloaded)");
  } catch (const dqe::Error& e) {
    std::fprintf(stderr, "saved trainer state is rejected on reload: %s\n  saved: %s\n", e.what(),
                 saved.dump().c_str());
    std::abort();
  }
  check_round_trip(saved, dqe::to_json(reloaded), "trainer state");
}

// dqe SUBCOMMAND --config FILE plus the subcommand's required flags, as main() parses it.
// Building the app is the slow part, so each input tries one subcommand.
void fuzz_command_line(const std::string& config_path, size_t which) {
  const std::vector<std::vector<std::string>> commands = {
      {"train", "--config", config_path, "--train", "t.jsonl", "--dev", "d.jsonl", "--out", "run"},
      {"eval", "--config", config_path, "--model", "m", "--data", "d.jsonl"},
      {"score", "--config", config_path, "--model", "m"},
  };
  const std::vector<std::string>& args = commands[which % commands.size()];
  dqe::cli::CliState state;
  std::unique_ptr<CLI::App> app = dqe::cli::make_app(state);
  try {
    dqe::cli::parse_args(*app, args);
    dqe::cli::finalize(state);
    if (args[0] == "train") {
      state.train.validate();
      (void)state.train.to_json().dump();
    }
  } catch (const dqe::Error&) {
  } catch (const CLI::ParseError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static TempFile file;
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) {
    fuzz_model_spec(j);
    fuzz_trainer_state(j);
  }
  file.write(data, size);
  fuzz_command_line(file.path(), size);
  return 0;
}
