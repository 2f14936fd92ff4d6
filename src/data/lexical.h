// Lexical match features of a query-result pair (issue 6's "match signals"): exact, stemmed
// and partial query-term matches, IDF-weighted and BM25 scores against statistics of the
// training results, first/last query-term matches, bigrams, numbers and lengths. A model
// trained with them (TaskSpec::lexical_features) adds a small MLP of these features to its
// logits, beside the text encoder.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace dqe {

// Lower-cased (ASCII) runs of letters and digits; bytes of UTF-8 sequences count as letters.
std::vector<std::string> lexical_words(std::string_view text);
// A light suffix stemmer ("drills" -> "drill", "lighting" -> "light"), for matching only.
std::string lexical_stem(const std::string& word);

// Document frequencies of stemmed words over the distinct result texts of a training set.
struct LexicalStats {
  int64_t docs = 0;
  double avg_len = 0;  // words per result
  std::map<std::string, int64_t> df;

  static LexicalStats build(const std::vector<std::string_view>& texts);
  // BM25's idf: log(1 + (docs - df + 0.5) / (df + 0.5)).
  double idf(const std::string& stem) const;
  nlohmann::ordered_json to_json() const;
  // Throws ModelError naming origin when the JSON is not what to_json() writes.
  static LexicalStats from_json(const nlohmann::json& j, const std::string& origin);
};

constexpr int64_t kNumLexicalFeatures = 14;
// kNumLexicalFeatures values, each roughly in [0, 1].
std::vector<float> lexical_features(const std::string& query, const std::string& text, const LexicalStats& stats);

}  // namespace dqe
