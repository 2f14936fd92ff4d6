#include "io/output_file.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "base/process_stop.h"
#include "dqe/errors.h"
#include "io/gzip_stream.h"
#include "test_util.h"

namespace dqe::detail {
namespace {
namespace fs = std::filesystem;

// Device nodes are made privately in the test's directory (the machine's /dev/null is never
// an output here): false where mknod is not allowed.
bool make_char_device(const std::string& path, unsigned minor) {
  return ::mknod(path.c_str(), S_IFCHR | 0666, makedev(1, minor)) == 0;
}

bool is_char_device(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

// Names in dir, sorted.
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  }
  return "no IoError";
}

void write_output(const std::string& path, const std::string& text) {
  OutputFile out(path);
  out.stream() << text;
  out.commit();
}

class OutputFileTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
};

TEST_F(OutputFileTest, RegularFileAppearsOnlyOnCommit) {
  const std::string path = dir_.path("out.jsonl");
  {
    OutputFile out(path);
    EXPECT_FALSE(out.direct());
    out.stream() << "a\n";
    out.flush();
    EXPECT_FALSE(fs::exists(path));
    out.commit();
  }
  EXPECT_EQ(test::read_text(path), "a\n");
  EXPECT_EQ(entries(dir_.path()), std::vector<std::string>{"out.jsonl"});
}

TEST_F(OutputFileTest, UncommittedOutputLeavesTheOldFileAndNoTemporary) {
  const std::string path = dir_.path("out.jsonl");
  test::write_text(path, "old\n");
  {
    OutputFile out(path);
    out.stream() << "new\n";
    out.flush();
  }
  EXPECT_EQ(test::read_text(path), "old\n");
  EXPECT_EQ(entries(dir_.path()), std::vector<std::string>{"out.jsonl"});
}

TEST_F(OutputFileTest, ReplacingAFileKeepsItsPermissions) {
  const std::string path = dir_.path("out.jsonl");
  test::write_text(path, "old\n");
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  write_output(path, "new\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

// The old writer used NAME.tmp and NAME.tmp-PID: a user's file of that name was clobbered,
// and a symlink planted there redirected the write.
TEST_F(OutputFileTest, NeverTouchesAUsersTmpFileOrAPlantedSymlink) {
  const std::string path = dir_.path("out.jsonl");
  test::write_text(path + ".tmp", "mine\n");
  const std::string victim = dir_.path("victim.txt");
  test::write_text(victim, "precious\n");
  fs::create_symlink(victim, path + ".tmp-" + std::to_string(::getpid()));
  write_output(path, "scored\n");
  EXPECT_EQ(test::read_text(path), "scored\n");
  EXPECT_EQ(test::read_text(path + ".tmp"), "mine\n");
  EXPECT_EQ(test::read_text(victim), "precious\n");
  EXPECT_TRUE(fs::is_symlink(path + ".tmp-" + std::to_string(::getpid())));
}

TEST_F(OutputFileTest, SymlinkToARegularFileReplacesTheTargetAndStaysALink) {
  fs::create_directories(dir_.path("real"));
  const std::string target = dir_.path("real/out.jsonl"), link = dir_.path("link.jsonl");
  test::write_text(target, "old\n");
  fs::create_symlink("real/out.jsonl", link);  // relative, as ln -s makes them
  write_output(link, "new\n");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(test::read_text(target), "new\n");
  EXPECT_EQ(entries(dir_.path("real")), std::vector<std::string>{"out.jsonl"});
}

TEST_F(OutputFileTest, DanglingSymlinkCreatesItsTargetOrSaysWhereItPoints) {
  const std::string link = dir_.path("link.jsonl");
  fs::create_symlink(dir_.path("made.jsonl"), link);
  write_output(link, "x\n");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(test::read_text(dir_.path("made.jsonl")), "x\n");

  const std::string nowhere = dir_.path("nowhere.jsonl");
  fs::create_symlink(dir_.path("missing/out.jsonl"), nowhere);
  EXPECT_EQ(error_of([&] { OutputFile out(nowhere); }),
            nowhere + ": cannot write (No such file or directory; it is a symlink to " + dir_.path("missing/out.jsonl") +
                ")");
}

TEST_F(OutputFileTest, CharacterDevicesAreWrittenThroughNotReplaced) {
  const std::string null = dir_.path("null"), full = dir_.path("full");
  if (!make_char_device(null, 3) || !make_char_device(full, 7)) GTEST_SKIP() << "mknod not permitted";
  {
    OutputFile out(null);
    EXPECT_TRUE(out.direct());
    out.stream() << "discarded\n";
    out.commit();
  }
  EXPECT_TRUE(is_char_device(null));
  // Through a symlink too, and for a .gz name.
  fs::create_symlink(null, dir_.path("to-null.jsonl.gz"));
  write_output(dir_.path("to-null.jsonl.gz"), "discarded\n");
  EXPECT_TRUE(is_char_device(null));

  // A full device: the error names the output and says why, and the node stays.
  EXPECT_EQ(error_of([&] { write_output(full, "x\n"); }), full + ": cannot write (No space left on device)");
  EXPECT_TRUE(is_char_device(full));
  EXPECT_EQ(entries(dir_.path()), (std::vector<std::string>{"full", "null", "to-null.jsonl.gz"}));
}

TEST_F(OutputFileTest, CheckStopsAtTheFirstFailedWrite) {
  const std::string full = dir_.path("full");
  if (!make_char_device(full, 7)) GTEST_SKIP() << "mknod not permitted";
  OutputFile out(full);
  EXPECT_NO_THROW(out.check());  // nothing written yet
  const std::string line(1000, 'x');
  int lines = 0;
  EXPECT_EQ(error_of([&] {
              for (; lines < 1000; ++lines) {
                out.stream() << line << '\n';
                out.check();
              }
            }),
            full + ": cannot write (No space left on device)");
  // Within the first buffer's worth, not after the whole input.
  EXPECT_LT(lines, 100);
}

TEST_F(OutputFileTest, FifoIsWrittenThroughToItsReader) {
  const std::string fifo = dir_.path("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  test::FifoReader reader(fifo);
  {
    OutputFile out(fifo);  // waits for the reader's open
    EXPECT_TRUE(out.direct());
    for (int i = 0; i < 10000; ++i) out.stream() << "line " << i << '\n';
    out.commit();
  }
  const std::string received = reader.finish();
  EXPECT_EQ(std::count(received.begin(), received.end(), '\n'), 10000);
  EXPECT_EQ(received.substr(0, 7), "line 0\n");
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(entries(dir_.path()), std::vector<std::string>{"pipe"});
}

// A FIFO with no reader: the open waits for one that comes later (as a shell's > does), and
// the process's stop request (what SIGINT and SIGTERM set) ends the wait with Interrupted.
// A blocking open(2) ignored both: the handler's SA_RESTART restarted it.
TEST_F(OutputFileTest, FifoOpenWaitsForAReaderAndEndsOnAStop) {
  using namespace std::chrono_literals;
  const std::string fifo = dir_.path("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::atomic<int> signal_number{0};
  register_process_stop(&signal_number);
  std::unique_ptr<test::FifoReader> reader;
  std::thread late([&] {
    std::this_thread::sleep_for(300ms);
    reader = std::make_unique<test::FifoReader>(fifo);
  });
  write_output(fifo, "for a late reader\n");
  late.join();
  EXPECT_EQ(reader->finish(), "for a late reader\n");

  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    signal_number = SIGTERM;
  });
  try {
    OutputFile out(fifo);
    ADD_FAILURE() << "the open of a FIFO with no reader returned";
  } catch (const Interrupted& e) {
    EXPECT_EQ(e.signal_number(), SIGTERM);
    EXPECT_NE(std::string(e.what()).find(fifo + ": waiting for a reader"), std::string::npos) << e.what();
  }
  stopper.join();
  register_process_stop(nullptr);
  EXPECT_EQ(entries(dir_.path()), std::vector<std::string>{"pipe"});
}

TEST_F(OutputFileTest, GzipThroughAFifoIsCompressedAndComplete) {
  const std::string fifo = dir_.path("pipe.gz");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  test::FifoReader reader(fifo);
  write_output(fifo, "compressed\n");
  const std::string bytes = reader.finish();
  ASSERT_GT(bytes.size(), 2u);
  EXPECT_EQ(bytes.substr(0, 2), "\x1f\x8b");
  test::write_text(dir_.path("copy.gz"), bytes);
  GzipReadBuf buf(dir_.path("copy.gz"));
  std::istream in(&buf);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()), "compressed\n");
}

// /dev/stdout and /proc/self/fd/N name an open descriptor: a pipe's link reads "pipe:[N]",
// which is no file to rename over.
TEST_F(OutputFileTest, SymlinkToADescriptorIsWrittenThrough) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string link = dir_.path("to-pipe.jsonl");
  fs::create_symlink("/proc/self/fd/" + std::to_string(fds[1]), link);
  {
    OutputFile out(link);
    EXPECT_TRUE(out.direct());
    out.stream() << "through\n";
    out.commit();
  }
  ::close(fds[1]);
  char buffer[64];
  const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
  ::close(fds[0]);
  EXPECT_EQ(std::string(buffer, n > 0 ? static_cast<size_t>(n) : 0), "through\n");
  EXPECT_TRUE(fs::is_symlink(link));
}

TEST_F(OutputFileTest, WhatIsNotAFileDeviceOrFifoIsRefused) {
  fs::create_directories(dir_.path("d"));
  EXPECT_EQ(error_of([&] { OutputFile out(dir_.path("d")); }), dir_.path("d") + ": cannot write output to a directory");
  fs::create_symlink(dir_.path("d"), dir_.path("to-d"));
  EXPECT_EQ(error_of([&] { OutputFile out(dir_.path("to-d")); }),
            dir_.path("to-d") + ": cannot write output to a directory (" + dir_.path("d") + ")");

  const std::string socket_path = dir_.path("sock");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(socket_path.size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, socket_path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(error_of([&] { OutputFile out(socket_path); }), socket_path + ": cannot write output to a socket");
  ::close(fd);

  fs::create_symlink(dir_.path("loop-a"), dir_.path("loop-b"));
  fs::create_symlink(dir_.path("loop-b"), dir_.path("loop-a"));
  EXPECT_EQ(error_of([&] { OutputFile out(dir_.path("loop-a")); }),
            dir_.path("loop-a") + ": cannot write (Too many levels of symbolic links)");
}

TEST_F(OutputFileTest, GzipToARegularFileRoundTrips) {
  const std::string path = dir_.path("out.jsonl.gz");
  std::string text;
  for (int i = 0; i < 50000; ++i) text += "{\"i\":" + std::to_string(i) + "}\n";
  write_output(path, text);
  GzipReadBuf buf(path);
  std::istream in(&buf);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()), text);
  EXPECT_LT(fs::file_size(path), text.size() / 4);
}

TEST_F(OutputFileTest, DashIsStandardOutput) {
  OutputFile out("-");
  EXPECT_TRUE(out.direct());
  EXPECT_EQ(out.name(), "<stdout>");
  out.commit();  // nothing written; stdout stays open
  EXPECT_NE(::fcntl(STDOUT_FILENO, F_GETFD), -1);
}

}  // namespace
}  // namespace dqe::detail
