#include "dqe/jsonl_reader.h"

#include <functional>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe {
namespace {

// A fresh directory per test (ctest runs tests in parallel).
class JsonlReaderTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = dir_.path(name);
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  std::vector<Record> read_all(const std::string& path, const ReaderOptions& options = {}) {
    JsonlReader reader(path, options);
    std::vector<Record> records;
    Record record;
    while (reader.next(record)) records.push_back(record);
    return records;
  }

  // The what() of the DataError thrown by the first bad line (max_bad_lines = 0).
  std::string first_error(const std::string& content, const ReaderOptions& options = {}) {
    const std::string path = write("bad.jsonl", content);
    try {
      read_all(path, options);
    } catch (const DataBudgetError& e) {
      return std::string("unexpected DataBudgetError: ") + e.what();
    } catch (const DataError& e) {
      return e.what();
    }
    return "no error";
  }

  test::TempDir dir_;
};

// Each line followed by '\n'.
std::string lines(const std::vector<std::string>& items) {
  std::string content;
  for (const std::string& item : items) content += item + "\n";
  return content;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

constexpr const char* kGood = R"({"query":"q","title":"t"})";

TEST_F(JsonlReaderTest, ReadsAllFields) {
  const std::string path =
      write("train.jsonl", lines({R"({"id":"hd-2","query_id":"qa","query":"angle bracket",)"
                                  R"("title":"Simpson Angle","description":"12-gauge","label":2.5})"}));
  JsonlReader reader(path, {});
  Record r;
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r.line, 1u);
  EXPECT_EQ(r.id, "hd-2");
  EXPECT_EQ(r.query_id, "qa");
  EXPECT_EQ(r.query, "angle bracket");
  EXPECT_EQ(r.text, "Simpson Angle 12-gauge");
  EXPECT_EQ(r.label_kind, LabelKind::kNumber);
  EXPECT_DOUBLE_EQ(r.label_number, 2.5);
  EXPECT_TRUE(r.raw.empty());  // keep_raw is off
  EXPECT_FALSE(reader.next(r));
  EXPECT_EQ(reader.lines_read(), 1);
  EXPECT_EQ(reader.records_read(), 1);
  EXPECT_EQ(reader.bad_lines(), 0);
  EXPECT_EQ(reader.path(), path);
}

TEST_F(JsonlReaderTest, JoinsOptionalTextFieldsWithOneSpace) {
  const auto records = read_all(write(
      "t.jsonl",
      lines({R"({"query":"q","title":"a b","description":"c"})", R"({"query":"q","title":"a"})",
             R"({"query":"q","title":"a","description":null})", R"({"query":"q","title":"a","description":""})"})));
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].text, "a b c");
  EXPECT_EQ(records[1].text, "a");
  EXPECT_EQ(records[2].text, "a");
  EXPECT_EQ(records[3].text, "a");
}

TEST_F(JsonlReaderTest, RemapsFieldNames) {
  ReaderOptions options;
  options.fields.query = "q";
  options.fields.text = {"name", "desc"};
  options.fields.label = "rel";
  options.fields.query_id = "qid";
  options.fields.id = "sku";
  const auto records =
      read_all(write("m.jsonl", lines({R"({"q":"drill","name":"Cordless Drill","desc":"18V","rel":"exact","qid":"q1",)"
                                       R"("sku":"s9","query":"ignored","title":"ignored"})"})),
               options);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].query, "drill");
  EXPECT_EQ(records[0].text, "Cordless Drill 18V");
  EXPECT_EQ(records[0].label_kind, LabelKind::kString);
  EXPECT_EQ(records[0].label_string, "exact");
  EXPECT_EQ(records[0].query_id, "q1");
  EXPECT_EQ(records[0].id, "s9");
}

TEST_F(JsonlReaderTest, QueryIdDefaultsToQueryAndNumbersKeepTheirText) {
  const auto records = read_all(
      write("ids.jsonl", lines({R"({"query":"q one","title":"t"})", R"({"query":"q","title":"t","id":42,"query_id":7})",
                                R"({"query":"q","title":"t","id":1.5,"query_id":null})",
                                R"({"query":"q","title":"t","id":123456789012345678901234567890})"})));
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].query_id, "q one");
  EXPECT_EQ(records[0].id, "");
  EXPECT_EQ(records[1].id, "42");
  EXPECT_EQ(records[1].query_id, "7");
  EXPECT_EQ(records[2].id, "1.5");
  EXPECT_EQ(records[2].query_id, "q");
  // Beyond 64 bits the parser reads a double; the id is still the number as written.
  EXPECT_EQ(records[3].id, "123456789012345678901234567890");
}

TEST_F(JsonlReaderTest, ReadsEveryLabelKind) {
  const auto records = read_all(
      write("labels.jsonl",
            lines({R"({"query":"q","title":"t","label":3})", R"({"query":"q","title":"t","label":true})",
                   R"({"query":"q","title":"t","label":false})", R"({"query":"q","title":"t","label":"partial"})",
                   R"({"query":"q","title":"t"})", R"({"query":"q","title":"t","label":null})"})));
  ASSERT_EQ(records.size(), 6u);
  EXPECT_EQ(records[0].label_kind, LabelKind::kNumber);
  EXPECT_DOUBLE_EQ(records[0].label_number, 3);
  EXPECT_EQ(records[1].label_kind, LabelKind::kNumber);
  EXPECT_DOUBLE_EQ(records[1].label_number, 1);
  EXPECT_EQ(records[2].label_kind, LabelKind::kNumber);
  EXPECT_DOUBLE_EQ(records[2].label_number, 0);
  EXPECT_EQ(records[3].label_kind, LabelKind::kString);
  EXPECT_EQ(records[3].label_string, "partial");
  EXPECT_EQ(records[4].label_kind, LabelKind::kNone);
  EXPECT_EQ(records[5].label_kind, LabelKind::kNone);
}

TEST_F(JsonlReaderTest, ReusedRecordIsFullyOverwritten) {
  const std::string path = write(
      "reuse.jsonl", lines({R"({"query":"q","title":"t","id":"a","label":"x"})", R"({"query":"r","title":"u"})"}));
  JsonlReader reader(path, {});
  Record r;
  ASSERT_TRUE(reader.next(r));
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r.line, 2u);
  EXPECT_EQ(r.query, "r");
  EXPECT_EQ(r.text, "u");
  EXPECT_EQ(r.query_id, "r");
  EXPECT_EQ(r.id, "");
  EXPECT_EQ(r.label_kind, LabelKind::kNone);
  EXPECT_EQ(r.label_string, "");
}

TEST_F(JsonlReaderTest, KeepsTheRawLine) {
  const std::string line =
      R"( {"title":"caf\u00e9", "query":"q","zeta":1.50,"big":12345678901234567890123,"alpha":[true,null]}  )";
  ReaderOptions options;
  options.keep_raw = true;
  const auto records = read_all(write("keep.jsonl", line + "\r\n" + kGood + "\n"), options);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].raw, line + "\r");
  EXPECT_EQ(records[0].text, "caf\u00e9");
  EXPECT_EQ(records[1].raw, kGood);
}

// Two query ids that differ beyond a double's precision were read as one group.
TEST_F(JsonlReaderTest, NumericIdsCompareAsWritten) {
  const auto records = read_all(write(
      "big.jsonl", lines({R"({"query":"q","title":"t","query_id":12345678901234567890123,"id":-0})",
                          R"({"query":"q","title":"t","query_id":12345678901234567890124,"id":1.50})",
                          R"({"query":"q","title":"t", "query_id" : 7 ,"id":1E+2,"x":{"id":5}})",
                          R"({"query":"q","title":"t","qu\u0065ry_id":8,"id":1,"id":2})"})));
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].query_id, "12345678901234567890123");
  EXPECT_EQ(records[1].query_id, "12345678901234567890124");
  EXPECT_EQ(records[0].id, "-0");
  EXPECT_EQ(records[1].id, "1.50");
  EXPECT_EQ(records[2].query_id, "7");
  EXPECT_EQ(records[2].id, "1E+2");  // the top-level id, not the nested one
  // An escaped key is the same key; of duplicates, the parser keeps the last.
  EXPECT_EQ(records[3].query_id, "8");
  EXPECT_EQ(records[3].id, "2");
}

TEST_F(JsonlReaderTest, SkipsBlankLinesButCountsThem) {
  const std::string path = write("blank.jsonl", std::string("\n   \n\t\r\n") + kGood + "\r\n\n" + kGood);
  JsonlReader reader(path, {});
  Record r;
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r.line, 4u);  // CRLF: the '\r' is JSON whitespace
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r.line, 6u);  // the last line has no '\n'
  EXPECT_FALSE(reader.next(r));
  EXPECT_EQ(reader.lines_read(), 6);
  EXPECT_EQ(reader.bad_lines(), 0);
}

TEST_F(JsonlReaderTest, ReadsLinesAcrossChunkBoundaries) {
  // ~1.3 MB, so lines straddle the reader's 64 KiB chunks.
  std::string content;
  for (int i = 0; i < 20000; ++i) {
    content += lines({R"({"query":"q)" + std::to_string(i) + R"(","title":"a fairly ordinary product title here"})"});
  }
  const auto records = read_all(write("many.jsonl", content));
  ASSERT_EQ(records.size(), 20000u);
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_EQ(records[i].query, "q" + std::to_string(i));
    ASSERT_EQ(records[i].line, i + 1);
  }
}

// One bad line after a good one: the message names line 2.
TEST_F(JsonlReaderTest, EachProblemHasItsMessage) {
  struct Case {
    std::string line;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"({"title":"t"})", R"(missing string field "query")"},
      {R"({"query":1,"title":"t"})", R"(field "query" must be a string, got number)"},
      {R"({"query":"q"})", R"(missing string field "title")"},
      {R"({"query":"q","title":5})", R"(field "title" must be a string, got number)"},
      {R"({"query":"q","title":null})", R"(field "title" must be a string, got null)"},
      {R"({"query":"q","title":"t","description":[1]})", R"(field "description" must be a string, got array)"},
      {R"([1,2])", "expected a JSON object, got array"},
      {R"("text")", "expected a JSON object, got string"},
      {R"({"query":"q","title":"t","label":{}})", R"(field "label" must be a number or string, got object)"},
      {R"({"query":"q","title":"t","id":[]})", R"(field "id" must be a string or number, got array)"},
      {R"({"query":"q","title":"t","query_id":true})", R"(field "query_id" must be a string or number, got boolean)"},
      {R"({"query":"q","title":"t")",
       "not valid JSON (column 25: syntax error while parsing object - unexpected end of input; expected '}')"},
      {R"({"query":"q","title":"t"}x)",
       "not valid JSON (column 26: syntax error while parsing value - invalid literal)"},
      // The parser's quote of the bad token (here invalid UTF-8) is left out of the message.
      {"{\"query\":\"\xff\",\"title\":\"t\"}",
       "not valid JSON (column 11: syntax error while parsing value - invalid string: ill-formed UTF-8 byte)"},
      {R"({"query":"q","title":"t","label":1e999})", "not valid JSON (number overflow parsing '1e999')"},
      // The parser would stop at the NUL and accept the line.
      {std::string(kGood) + std::string(1, '\0') + "junk", "line contains a NUL byte"},
      {R"({"query":"q","title":"t","x":)" + std::string(64, '[') + std::string(64, ']') + "}",
       "JSON nested deeper than 64 levels"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    const std::string path = dir_.path("bad.jsonl");
    EXPECT_EQ(first_error(lines({kGood, c.line, kGood})), path + ":2: " + c.message);
  }
}

TEST_F(JsonlReaderTest, MissingLabelIsAnErrorOnlyWhenRequired) {
  ReaderOptions options;
  options.require_label = true;
  const std::string path = dir_.path("bad.jsonl");
  EXPECT_EQ(first_error(lines({kGood}), options), path + ":1: missing field \"label\"");
  EXPECT_EQ(first_error(R"({"query":"q","title":"t","label":null})", options), path + ":1: missing field \"label\"");
  EXPECT_EQ(first_error(R"({"query":"q","title":"t","label":0})", options), "no error");
}

TEST_F(JsonlReaderTest, DepthLimitCountsContainersOutsideStrings) {
  // The object itself is level 1, so 63 nested arrays inside reach exactly 64.
  const std::string deepest_allowed =
      R"({"query":"q","title":"t","x":)" + std::string(63, '[') + std::string(63, ']') + "}";
  const std::string brackets_in_strings = R"({"query":")" + std::string(100, '[') + R"(","title":"\"{{{{"})";
  const auto records = read_all(write("deep.jsonl", lines({deepest_allowed, brackets_in_strings})));
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].query, std::string(100, '['));
  EXPECT_EQ(records[1].text, "\"{{{{");
}

TEST_F(JsonlReaderTest, DefaultLineLimitIsOneMebibyte) {
  const std::string long_title(1 << 20, 'x');
  const std::string path = dir_.path("bad.jsonl");
  EXPECT_EQ(first_error(lines({R"({"query":"q","title":")" + long_title + R"("})"})),
            path + ":1: line longer than 1048576 bytes");
}

TEST_F(JsonlReaderTest, SkipsOverLongLineAndReadsTheNextOne) {
  ReaderOptions options;
  options.max_line_bytes = 100;
  options.max_bad_lines = 1;
  options.rejects_path = dir_.path("rejects.jsonl");
  // 200 KB: longer than a read chunk, so the discarded tail spans several chunks.
  const std::string exactly_100 = R"({"query":"q","title":")" + std::string(100 - 24, 'y') + R"("})";
  ASSERT_EQ(exactly_100.size(), 100u);
  const std::string path =
      write("long.jsonl", lines({R"({"query":"q","title":")" + std::string(200000, 'x') + R"("})", exactly_100}));
  JsonlReader reader(path, options);
  Record r;
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r.line, 2u);
  EXPECT_EQ(r.text, std::string(100 - 24, 'y'));
  EXPECT_FALSE(reader.next(r));
  EXPECT_EQ(reader.bad_lines(), 1);

  const auto rejects = read_lines(options.rejects_path);
  ASSERT_EQ(rejects.size(), 1u);
  const auto entry = nlohmann::json::parse(rejects[0]);
  EXPECT_EQ(entry["line"], 1);
  EXPECT_EQ(entry["error"], "line longer than 100 bytes");
  // Only the part the reader held: the first max_line_bytes.
  EXPECT_EQ(entry["raw"].get<std::string>().size(), 100u);
}

TEST_F(JsonlReaderTest, SkipsBadLinesIntoRejectsFileWithinBudget) {
  ReaderOptions options;
  options.max_bad_lines = 2;
  options.rejects_path = dir_.path("rejects.jsonl");
  const std::string path = write("dev.jsonl", lines({kGood, R"({"query":"q"})", kGood, "{\"query\":\"\xff\"", kGood}));
  JsonlReader reader(path, options);
  Record r;
  int records = 0;
  while (reader.next(r)) ++records;
  EXPECT_EQ(records, 3);
  EXPECT_EQ(reader.bad_lines(), 2);
  EXPECT_EQ(reader.lines_read(), 5);

  const auto rejects = read_lines(options.rejects_path);
  ASSERT_EQ(rejects.size(), 2u);
  EXPECT_EQ(rejects[0], R"({"line":2,"error":"missing string field \"title\"","raw":"{\"query\":\"q\"}"})");
  // The invalid byte is replaced, so the rejects file parses as JSON.
  const auto second = nlohmann::json::parse(rejects[1]);
  EXPECT_EQ(second["line"], 4);
  EXPECT_EQ(second["raw"], "{\"query\":\"\xEF\xBF\xBD\"");
  EXPECT_EQ(second["error"].get<std::string>().rfind("not valid JSON (", 0), 0u);
}

TEST_F(JsonlReaderTest, ThrowsBudgetErrorOnTheLineOverBudget) {
  ReaderOptions options;
  options.max_bad_lines = 2;
  options.rejects_path = dir_.path("rejects.jsonl");
  const std::string path = write("dev.jsonl", lines({kGood, "[]", "[]", kGood, R"({"query":"q","title":1})", kGood}));
  JsonlReader reader(path, options);
  Record r;
  ASSERT_TRUE(reader.next(r));
  ASSERT_TRUE(reader.next(r));
  try {
    reader.next(r);
    FAIL() << "expected DataBudgetError";
  } catch (const DataBudgetError& e) {
    EXPECT_EQ(std::string(e.what()), path +
                                         ":5: bad line (field \"title\" must be a string, got number); "
                                         "more than 2 bad lines allowed by --max-bad-lines");
  }
  // The skipped lines are written; the line that stops the run is in the message instead.
  EXPECT_EQ(read_lines(options.rejects_path).size(), 2u);
}

TEST_F(JsonlReaderTest, FirstBadLineThrowsWithoutBudget) {
  const std::string path = write("train.jsonl", lines({kGood, "[]"}));
  JsonlReader reader(path, {});
  Record r;
  ASSERT_TRUE(reader.next(r));
  EXPECT_THROW(reader.next(r), DataError);
}

TEST_F(JsonlReaderTest, UnopenablePathsThrowIoError) {
  const std::string missing = dir_.path("missing.jsonl");
  try {
    JsonlReader reader(missing, {});
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()), missing + ": cannot open (No such file or directory)");
  }
  try {
    JsonlReader reader(dir_.path(), {});
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()), dir_.path() + ": cannot open (Is a directory)");
  }
}

TEST_F(JsonlReaderTest, InvalidOptionsThrowConfigError) {
  const std::string path = write("ok.jsonl", kGood);
  ReaderOptions negative_budget;
  negative_budget.max_bad_lines = -1;
  EXPECT_THROW(JsonlReader(path, negative_budget), ConfigError);
  ReaderOptions no_text;
  no_text.fields.text.clear();
  EXPECT_THROW(JsonlReader(path, no_text), ConfigError);
}

// Each run writes its rejects file afresh: a file left by an earlier run does not grow, and a
// clean run leaves an empty one rather than the old rejects.
TEST_F(JsonlReaderTest, RejectsFileIsWrittenAfreshWhenReadingEnds) {
  ReaderOptions options;
  options.max_bad_lines = 5;
  options.rejects_path = dir_.path("rejects.jsonl");
  test::write_text(options.rejects_path, "{\"line\":99,\"error\":\"old run\",\"raw\":\"\"}\n");
  const std::string path = write("dev.jsonl", lines({kGood, "[]", kGood}));
  {
    JsonlReader reader(path, options);
    Record r;
    ASSERT_TRUE(reader.next(r));
    ASSERT_TRUE(reader.next(r));  // past the bad line
    // Not yet in place: the old file is there until reading ends.
    EXPECT_EQ(read_lines(options.rejects_path).size(), 1u);
    EXPECT_FALSE(reader.next(r));
  }
  const auto rejects = read_lines(options.rejects_path);
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(rejects[0])["line"], 2);

  read_all(write("clean.jsonl", lines({kGood})), options);
  EXPECT_EQ(test::read_text(options.rejects_path), "");
}

TEST_F(JsonlReaderTest, RejectsFileIsKeptWhenTheBudgetStopsTheRun) {
  ReaderOptions options;
  options.max_bad_lines = 1;
  options.rejects_path = dir_.path("rejects.jsonl");
  test::write_text(options.rejects_path, "old\n");
  EXPECT_THROW(read_all(write("dev.jsonl", lines({"[]", kGood, "[]"})), options), DataBudgetError);
  const auto rejects = read_lines(options.rejects_path);
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(rejects[0])["line"], 1);
}

TEST_F(JsonlReaderTest, RejectsWriteErrorNamesTheFileAtTheLine) {
  const std::string full = dir_.path("full");
  if (::mknod(full.c_str(), S_IFCHR | 0666, makedev(1, 7)) != 0) GTEST_SKIP() << "mknod not permitted";
  ReaderOptions options;
  options.max_bad_lines = 5;
  options.rejects_path = full;
  JsonlReader reader(write("dev.jsonl", lines({kGood, "[]", kGood})), options);
  Record r;
  ASSERT_TRUE(reader.next(r));
  try {
    reader.next(r);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()), full + ": cannot write (No space left on device)");
  }
}

TEST_F(JsonlReaderTest, UnwritableRejectsFileFailsBeforeReading) {
  ReaderOptions options;
  options.rejects_path = dir_.path();  // a directory
  EXPECT_THROW(JsonlReader(write("ok.jsonl", kGood), options), IoError);
}

TEST_F(JsonlReaderTest, GzipInputCutShortIsAnErrorNotAShorterFile) {
  const std::string whole = test::gzip(lines({kGood, kGood, kGood, kGood}));
  const std::string path = write("dev.jsonl.gz", whole.substr(0, whole.size() - 8));  // no trailer
  try {
    read_all(path);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": truncated gzip stream", 0), 0u) << e.what();
  }
  EXPECT_EQ(read_all(write("two.jsonl.gz", whole + test::gzip(lines({kGood})))).size(), 5u);
  EXPECT_THROW(read_all(write("junk.jsonl.gz", whole + "junk")), IoError);
}

TEST(RawMemberTest, ReturnsTheValueAsWritten) {
  const std::string line =
      R"({"a" : 12345678901234567890123 , "s":"x\"}\\","o":{"a":[1,{"b":"]"}]},"t":true,"n":null,"e":[] })";
  EXPECT_EQ(raw_member(line, "a"), "12345678901234567890123");
  EXPECT_EQ(raw_member(line, "s"), R"("x\"}\\")");
  EXPECT_EQ(raw_member(line, "o"), R"({"a":[1,{"b":"]"}]})");
  EXPECT_EQ(raw_member(line, "t"), "true");
  EXPECT_EQ(raw_member(line, "n"), "null");
  EXPECT_EQ(raw_member(line, "e"), "[]");
  EXPECT_EQ(raw_member(line, "b"), "");  // only nested
  EXPECT_EQ(raw_member("{}", "a"), "");
  EXPECT_EQ(raw_member("\xEF\xBB\xBF{\"a\":1}", "a"), "1");  // after a byte order mark
  EXPECT_EQ(raw_member(R"({"\u0061":2,"a":3})", "a"), "3");  // the parser keeps the last
}

TEST(SetMembersTest, ReplacesInPlaceAndAppendsKeepingEveryOtherByte) {
  const std::string line = R"({"id":12345678901234567890123, "t":"caf\u00e9 \ud83d\ude00","score": 1 ,"o":{"score":0}})";
  EXPECT_EQ(set_members(line, {{"score", "0.25"}, {"keep", "true"}}),
            R"({"id":12345678901234567890123, "t":"caf\u00e9 \ud83d\ude00","score": 0.25 ,"o":{"score":0},"keep":true})");
  EXPECT_EQ(set_members("{}", {{"score", "1"}, {"pred", "\"a\""}}), R"({"score":1,"pred":"a"})");
  EXPECT_EQ(set_members(" { } \r", {{"score", "1"}}), " {\"score\":1 } \r");
  EXPECT_EQ(set_members(R"({"a":1})", {}), R"({"a":1})");
  // The last member replaced and a new one added after it.
  EXPECT_EQ(set_members(R"({"score":[1,2]})", {{"score", "3"}, {"probs", "[0.5,0.5]"}}),
            R"({"score":3,"probs":[0.5,0.5]})");
}

class ReadJsonlTest : public JsonlReaderTest {};

TEST_F(ReadJsonlTest, ReadsEveryRecord) {
  const auto records = read_jsonl(write("all.jsonl", lines({kGood, "", kGood})), {});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].line, 1u);
  EXPECT_EQ(records[1].line, 3u);
}

TEST_F(ReadJsonlTest, ThrowsWhenThereIsNoRecord) {
  for (const std::string& content : {std::string(), std::string("\n  \n")}) {
    const std::string path = write("empty.jsonl", content);
    try {
      read_jsonl(path, {});
      FAIL() << "expected DataError";
    } catch (const DataError& e) {
      EXPECT_EQ(std::string(e.what()), path + ": no records");
    }
  }
}

// A request's body read from memory: the same records and errors as a file, named as given.
TEST(JsonlReaderOfText, ReadsTextInMemoryAsAFile) {
  ReaderOptions ro;
  ro.keep_raw = true;
  JsonlReader reader = JsonlReader::of_text(
      "request", "{\"query\": \"drill\", \"title\": \"a drill\"}\n\n{\"query\": \"saw\", \"title\": \"saw\"}", ro);
  Record r;
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r.query, "drill");
  EXPECT_EQ(r.raw, "{\"query\": \"drill\", \"title\": \"a drill\"}");
  ASSERT_TRUE(reader.next(r)) << "a last line without its newline is read";
  EXPECT_EQ(r.line, 3u);
  EXPECT_FALSE(reader.next(r));
  JsonlReader bad = JsonlReader::of_text("request", "{\"query\": \"x\", \"title\": \"y\"}\n{\"title\": \"y\"}\n", ro);
  ASSERT_TRUE(bad.next(r));
  try {
    bad.next(r);
    ADD_FAILURE() << "a line without its query was read";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("request:2: ", 0), 0u) << e.what();
  }
  ro.rejects_path = "rejects.jsonl";
  EXPECT_THROW(JsonlReader::of_text("request", "", ro), Error) << "no rejects file for text in memory";
}

// A field flag naming another role's field is a usage error naming both flags, before any line.
TEST(JsonlReaderFields, EachRoleNamesItsOwnField) {
  test::TempDir dir;
  const std::string path = dir.path("in.jsonl");
  test::write_text(path, "{\"query\": \"q\", \"title\": \"t\", \"label\": 1}\n");
  const std::vector<std::pair<std::function<void(ReaderOptions&)>, std::string>> cases = {
      {[](ReaderOptions& o) { o.fields.features = "title"; }, "--features-field \"title\" is also the --text-fields field"},
      {[](ReaderOptions& o) { o.fields.image = "query"; }, "--image-field \"query\" is also the --query-field field"},
      {[](ReaderOptions& o) { o.fields.text = {"title", "query"}; }, "--text-fields \"query\" is also the --query-field"},
      {[](ReaderOptions& o) { o.fields.text = {"title", "title"}; }, "--text-fields \"title\" is also given twice there"},
      {[](ReaderOptions& o) {
         o.fields.label = "title";
         o.require_label = true;
       },
       "--label-field \"title\" is also the --text-fields field"},
  };
  for (const auto& [edit, words] : cases) {
    ReaderOptions ro;
    edit(ro);
    try {
      JsonlReader reader(path, ro);
      ADD_FAILURE() << "accepted: " << words;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  }
  ReaderOptions scoring;
  scoring.fields.label = "title";  // not read when no label is required
  JsonlReader reader(path, scoring);
  Record r;
  EXPECT_TRUE(reader.next(r));
}

// The share of a file read, for score's progress: exact by bytes for a plain file (the lines
// handed out, not the chunk read ahead), by compressed bytes for a .gz, unknown for text in memory.
TEST_F(JsonlReaderTest, FractionReadFollowsTheLinesHandedOut) {
  // Lines that do not compress away, so that a .gz spans several reads of its buffer.
  std::vector<std::string> items;
  uint64_t state = 12345;
  for (int i = 0; i < 20000; ++i) {
    std::string title;
    for (int c = 0; c < 24; ++c) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      title += static_cast<char>('a' + (state >> 33) % 26);
    }
    items.push_back(R"({"query":"q","title":")" + title + "\"}");
  }
  const std::string content = lines(items);
  const double line_bytes = static_cast<double>(items[0].size() + 1);
  const double size = static_cast<double>(content.size());

  JsonlReader plain(write("big.jsonl", content), {});
  Record record;
  EXPECT_EQ(plain.fraction_read(), 0.0);
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(plain.next(record));
  EXPECT_DOUBLE_EQ(plain.fraction_read(), 5000 * line_bytes / size);
  while (plain.next(record)) {
  }
  EXPECT_DOUBLE_EQ(plain.fraction_read(), 1.0);

  JsonlReader gz(write("big.jsonl.gz", test::gzip(content)), {});
  double last = gz.fraction_read(), middle = -1;
  EXPECT_EQ(last, 0.0);
  for (int i = 0; gz.next(record); ++i) {
    const double now = gz.fraction_read();
    EXPECT_GE(now, last) << "line " << i + 1;
    last = now;
    if (i == 10000) middle = now;
  }
  EXPECT_GT(middle, 0.2);
  EXPECT_LT(middle, 0.8);
  EXPECT_DOUBLE_EQ(last, 1.0);

  JsonlReader memory = JsonlReader::of_text("request", lines({kGood}), {});
  EXPECT_LT(memory.fraction_read(), 0);
}

}  // namespace
}  // namespace dqe
