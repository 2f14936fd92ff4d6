// Error types thrown by the dqe library. Only the CLI's main() decides how to exit;
// each subclass maps to one exit code there.
#pragma once

#include <stdexcept>
#include <string>

namespace dqe {

// Base of every error dqe throws on purpose. what() is one line, ready to print.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A flag, config value or combination of them is invalid (usage error).
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Input data is malformed: what() starts with "file:line: ".
class DataError : public Error {
 public:
  using Error::Error;
};

// More bad input lines than --max-bad-lines allows.
class DataBudgetError : public DataError {
 public:
  using DataError::DataError;
};

// A file or directory cannot be read or written (missing, unwritable, truncated).
class IoError : public Error {
 public:
  using Error::Error;
};

// A model directory or weight file is invalid (missing weights, shape mismatch...).
class ModelError : public Error {
 public:
  using Error::Error;
};

// SIGINT or SIGTERM asked the work to stop at a point where nothing could be saved (before a
// training run's first step, or in a command whose outputs appear only when complete).
class Interrupted : public Error {
 public:
  Interrupted(int signal_number, const std::string& what) : Error(what), signal_number_(signal_number) {}
  int signal_number() const { return signal_number_; }

 private:
  int signal_number_;
};

}  // namespace dqe
