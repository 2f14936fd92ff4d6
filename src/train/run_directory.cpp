// A run directory's lifecycle: the lock, new-or-resume checks, recovery of checkpoints a crash
// left half-swapped, and the comparison of a resumed run's configuration with the recorded one.
#include "dqe/engine.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <vector>

#include "base/format.h"
#include "base/log.h"
#include "dqe/errors.h"
#include "io/checkpoint_dir.h"
#include "io/remove_tree.h"
#include "io/output.h"

namespace dqe::training {
namespace fs = std::filesystem;

namespace {

// Marks a directory as a dqe run, so that a later run recognises it as one of dqe's (and a
// directory without it, holding anything, as the user's).
constexpr const char* kRunMarker = "dqe_run.json";

// What dqe itself writes into a run directory.
bool is_dqe_entry(const std::string& name) {
  static const char* const kOwn[] = {kRunMarker,  "train_log.jsonl", "eval_log.jsonl", "best",    "last",
                                     "best.tmp",  "last.tmp",        "best.old",       "last.old"};
  return std::find(std::begin(kOwn), std::end(kOwn), name) != std::end(kOwn);
}

// A temporary file of dqe's own a kill left behind: write_file_atomic writes NAME through
// ".NAME.tmp-" and 10 characters beside it (dqe_run.json, the logs), renamed when complete.
bool is_own_leftover(const std::string& name) {
  for (const char* own : {kRunMarker, "train_log.jsonl", "eval_log.jsonl"}) {
    const std::string prefix = std::string(".") + own + ".tmp-";
    if (name.size() == prefix.size() + 10 && name.compare(0, prefix.size(), prefix) == 0) return true;
  }
  return false;
}

bool is_dqe_run(const fs::path& dir) {
  return fs::exists(dir / kRunMarker) || fs::exists(dir / "last" / "trainer_state.json") ||
         fs::exists(dir / "best" / "config.json");
}

bool holds_training_state(const std::string& checkpoint) {
  return fs::exists(fs::path(checkpoint) / "trainer_state.json");
}

// An evaluation that improves writes best/ and then last/, each with the whole training state.
// A kill between the two at the run's first checkpoint leaves best/ and no last/: best/ then
// holds the state last/ was to hold, and --resume continues from a copy of it (best/ stays).
void restore_last_from_best(const std::string& last, const std::string& best) {
  if (holds_training_state(last) || !holds_training_state(best)) return;
  write_checkpoint(last, [&](const std::string& tmp) {
    std::error_code ec;
    fs::copy(best, tmp, fs::copy_options::recursive, ec);
    if (ec) throw IoError(best + ": cannot copy to " + tmp + " (" + ec.message() + ")");
  });
  detail::logger("run")->warn("--resume: {} was missing (the run stopped while writing it); continuing from {} (step {})",
                              last, best, load_trainer_state(last, nullptr).step);
}

std::string value_text(const nlohmann::ordered_json& v) {
  if (v.is_string()) return v.get<std::string>().empty() ? "\"\"" : v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ",") + value_text(x);
    return out;
  }
  if (v.is_number_float()) return format_significant(v.get<double>(), 6);
  return v.dump();
}

}  // namespace

RunDirectory::RunDirectory(const std::string& out_dir, bool resume, bool owner) : path_(out_dir) {
  if (path_.empty()) throw ConfigError("--out is required");
  const fs::path dir(path_);
  if (!owner) {
    if (resume) resumed_ = load_trainer_state(last(), nullptr);
    return;
  }
  std::error_code ec;
  if (fs::exists(dir) && !fs::is_directory(dir)) throw ConfigError("--out " + path_ + " is not a directory");
  const bool existed = fs::exists(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) throw IoError(path_ + ": cannot create directory (" + ec.message() + ")");
  lock_fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd_ < 0) throw IoError(path_ + ": cannot open (" + std::strerror(errno) + ")");
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (err == EWOULDBLOCK)
      throw ConfigError("--out " + path_ + " is in use by another dqe run; wait for it or choose another directory");
    throw IoError(path_ + ": cannot lock (" + std::strerror(err) + ")");
  }
  // A refusal gives the lock back (no destructor runs for a constructor that throws).
  try {
    std::vector<fs::path> leftovers;
    for (const auto& entry : fs::directory_iterator(dir))
      if (is_own_leftover(entry.path().filename().string())) leftovers.push_back(entry.path());
    for (const auto& path : leftovers) fs::remove(path, ec);
    if (!resume) {
      for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (!is_dqe_entry(name) || !is_dqe_run(dir))
          throw ConfigError("--out " + path_ + " is not empty and not a dqe run directory (it holds " + name +
                            "); choose a new or empty directory");
      }
    }
    recover_checkpoint(last());
    recover_checkpoint(best());
    if (resume) {
      restore_last_from_best(last(), best());
      if (!holds_training_state(last()))
        throw ConfigError("--resume: " + last() + " holds no training checkpoint to continue from");
      resumed_ = load_trainer_state(last(), nullptr);
    } else if (fs::exists(last()) || fs::exists(best())) {
      throw ConfigError("--out " + path_ + " already holds a run: add --resume to continue it, or choose another directory");
    }
    // Proves the directory writable now, not after an hour of training.
    write_file_atomic((dir / kRunMarker).string(), nlohmann::ordered_json{{"format", "dqe run"}}.dump() + "\n");
    created_ = !existed;
  } catch (...) {
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw;
  }
}

RunDirectory::~RunDirectory() {
  if (lock_fd_ < 0) return;
  if (created_ && std::uncaught_exceptions() > 0) {
    std::error_code ec;
    const fs::path log = fs::path(path_) / "train_log.jsonl";
    const bool stepped = fs::exists(log, ec) && fs::file_size(log, ec) > 0;
    if (!stepped && !fs::exists(last(), ec) && !fs::exists(best(), ec)) detail::remove_tree(path_);
  }
  ::close(lock_fd_);  // releases the lock
}

void RunDirectory::check_resume_config(const nlohmann::ordered_json& now, const std::vector<std::string>& may_change) const {
  const nlohmann::ordered_json& before = resumed_.config;
  if (!before.is_object()) return;
  for (auto it = now.begin(); it != now.end(); ++it) {
    const std::string& key = it.key();
    if (std::find(may_change.begin(), may_change.end(), key) != may_change.end()) continue;
    // The step budget may grow or shrink: the engine re-plans the schedule over the new length.
    if (key == "epochs" || key == "max-steps") continue;
    auto was = before.find(key);
    if (was == before.end()) continue;  // recorded by an older dqe that did not have the flag
    // A model source left out on --resume is the run's own (it continues from last/).
    if ((key == "init" || key == "tokenizer") && it->is_string() && it->get<std::string>().empty()) continue;
    if (*it == *was) continue;
    if (it->is_number() && was->is_number() && it->get<double>() == was->get<double>()) continue;
    throw ConfigError("--resume: --" + key + " " + value_text(*it) + " differs from the run's " + value_text(*was) +
                      " (a resumed run continues as it was started; start a new run to change it)");
  }
}

}  // namespace dqe::training
