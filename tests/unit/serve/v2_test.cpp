#include "serve/v2.h"

#include <gtest/gtest.h>

namespace dqe::service {
namespace {

using json = nlohmann::json;

V2Inputs inputs() { return v2_inputs(FieldMap(), ""); }

TEST(V2, InputTensorsBecomeTheLinesScoreReads) {
  const std::string body = R"({"id": "r1", "inputs": [
      {"name": "query", "shape": [2], "datatype": "BYTES", "data": ["drill", "saw"]},
      {"name": "title", "shape": [2], "datatype": "BYTES", "data": [["cordless drill"], ["hand saw"]]},
      {"name": "features", "shape": [2], "datatype": "BYTES", "data": ["{\"ctr\": 0.5}", "{}"]},
      {"name": "image_embedding", "shape": [2, 2], "datatype": "FP32", "data": [0.5, 1, 2, 3]}],
      "outputs": [{"name": "score"}, {"name": "probs"}]})";
  const V2Request r = parse_v2_request(body, inputs(), 10);
  EXPECT_EQ(r.id, "r1");
  ASSERT_EQ(r.lines.size(), 2u);
  EXPECT_EQ(json::parse(r.lines[0]),
            json::parse(R"({"query":"drill","title":"cordless drill","features":{"ctr":0.5},"image_embedding":[0.5,1]})"));
  EXPECT_EQ(json::parse(r.lines[1])["image_embedding"], json::parse("[2,3]"));
  EXPECT_TRUE(r.probs);
  EXPECT_FALSE(r.pred);
  EXPECT_FALSE(r.suspect);
}

TEST(V2, ABadRequestIsRefusedWithItsStatusAndReason) {
  const std::string q = R"({"name": "query", "shape": [1], "datatype": "BYTES", "data": ["a"]})";
  const std::string t = R"({"name": "title", "shape": [1], "datatype": "BYTES", "data": ["b"]})";
  const std::vector<std::tuple<std::string, int, std::string>> cases = {
      {"not json", 400, "not JSON"},
      {"[1]", 400, "must be a JSON object"},
      {"{}", 400, "\"inputs\" must be a non-empty list"},
      {R"({"inputs": [)" + q + "]}", 400, "input \"title\" is required"},
      {R"({"inputs": [)" + q + "," + q + "]}", 400, "input \"query\" is given twice"},
      {R"({"inputs": [)" + q + R"(, {"name": "tittle", "shape": [1], "datatype": "BYTES", "data": ["b"]}]})", 400,
       "unknown input \"tittle\""},
      {R"({"inputs": [)" + q + R"(, {"name": "title", "shape": [1], "datatype": "FP32", "data": [1]}]})", 400,
       "must have datatype BYTES"},
      {R"({"inputs": [)" + q + R"(, {"name": "title", "shape": [2], "datatype": "BYTES", "data": ["b"]}]})", 400,
       "shape [2] holds 2 values but data has 1"},
      {R"({"inputs": [)" + q + R"(, {"name": "title", "shape": [2], "datatype": "BYTES", "data": ["b", "c"]}]})", 400,
       "has 2 rows but \"query\" has 1"},
      {R"({"inputs": [)" + q + R"(, {"name": "title", "shape": [1], "datatype": "BYTES", "data": [7]}]})", 400,
       "BYTES data must be strings"},
      {R"({"inputs": [)" + q + "," + t + R"(, {"name": "features", "shape": [1], "datatype": "BYTES", "data": ["[1]"]}]})",
       400, "must hold a JSON object"},
      {R"({"inputs": [)" + q + "," + t + R"(], "outputs": [{"name": "logits"}]})", 400, "unknown output \"logits\""},
      {R"({"inputs": [)" + q + "," + t + R"(], "parameters": {"probs": 1}})", 400, "parameters.probs must be true or false"},
      {R"({"inputs": [{"name": "query", "shape": [3], "datatype": "BYTES", "data": ["a", "b", "c"]}]})", 413,
       "at most 2 a request"},
      {std::string(100, '[') + std::string(100, ']'), 400, "nests deeper"},
  };
  for (const auto& [body, status, words] : cases) {
    try {
      parse_v2_request(body, inputs(), 2);
      ADD_FAILURE() << "accepted: " << body;
    } catch (const BadRequest& e) {
      EXPECT_EQ(e.status(), status) << body;
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  }
}

TEST(V2, TheResponseHoldsTheOutputsAsked) {
  TaskSpec spec;
  spec.task = Task::kClassification;
  spec.labels = {"bad", "good"};
  Predictions p;
  p.scores = {0.25, 0.75};
  p.classes = {0, 1};
  p.probs = {{0.75, 0.25}, {0.25, 0.75}};
  V2Request r;
  r.id = "x";
  r.pred = r.probs = r.suspect = true;
  const json out = json::parse(v2_response("m", "v1", r, p, spec, {{}, {"oov"}}).dump());
  EXPECT_EQ(out["model_name"], "m");
  EXPECT_EQ(out["id"], "x");
  const auto& o = out["outputs"];
  ASSERT_EQ(o.size(), 5u) << out.dump();
  EXPECT_EQ(o[0]["name"], "score");
  EXPECT_EQ(o[0]["data"], json::parse("[0.25, 0.75]"));
  EXPECT_EQ(o[1]["name"], "pred");
  EXPECT_EQ(o[1]["data"], json::parse(R"(["bad", "good"])"));
  EXPECT_EQ(o[2]["name"], "probs");
  EXPECT_EQ(o[2]["shape"], json::parse("[2, 2]"));
  EXPECT_EQ(o[2]["data"], json::parse("[0.75, 0.25, 0.25, 0.75]"));
  EXPECT_EQ(o[3]["data"], json::parse("[false, true]"));
  EXPECT_EQ(o[4]["data"], json::parse(R"(["[]", "[\"oov\"]"])"));
}

}  // namespace
}  // namespace dqe::service
