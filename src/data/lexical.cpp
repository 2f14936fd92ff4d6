#include "data/lexical.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "dqe/errors.h"

namespace dqe {
namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool is_number(const std::string& w) { return std::any_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; }); }

std::vector<std::string> stems_of(const std::vector<std::string>& words) {
  std::vector<std::string> out;
  out.reserve(words.size());
  for (const auto& w : words) out.push_back(lexical_stem(w));
  return out;
}

}  // namespace

std::vector<std::string> lexical_words(std::string_view text) {
  std::vector<std::string> words;
  std::string current;
  for (const char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) current += ch;
    else if (c >= 'A' && c <= 'Z') current += static_cast<char>(c - 'A' + 'a');
    else if (!current.empty()) words.push_back(std::move(current)), current.clear();
  }
  if (!current.empty()) words.push_back(std::move(current));
  return words;
}

std::string lexical_stem(const std::string& w) {
  if (w.size() <= 3 || is_number(w)) return w;
  for (const char* suffix : {"ing", "ies", "es", "ed", "s"}) {
    if (!ends_with(w, suffix)) continue;
    const size_t n = std::char_traits<char>::length(suffix);
    if (w.size() - n < 3) return w;
    if (std::string(suffix) == "ies") return w.substr(0, w.size() - 3) + "y";
    if (std::string(suffix) == "es" && !(ends_with(w, "ches") || ends_with(w, "shes") || ends_with(w, "sses") ||
                                          ends_with(w, "xes") || ends_with(w, "zes")))
      return w.substr(0, w.size() - 1);  // "hoses" -> "hose", "boxes" -> "box" below
    if (std::string(suffix) == "s" && ends_with(w, "ss")) return w;
    return w.substr(0, w.size() - n);
  }
  return w;
}

LexicalStats LexicalStats::build(const std::vector<std::string_view>& texts) {
  LexicalStats s;
  std::unordered_set<std::string_view> seen;
  double total = 0;
  for (const auto& t : texts) {
    if (!seen.insert(t).second) continue;
    const auto stems = stems_of(lexical_words(t));
    total += static_cast<double>(stems.size());
    for (const auto& w : std::set<std::string>(stems.begin(), stems.end())) ++s.df[w];
    ++s.docs;
  }
  s.avg_len = s.docs > 0 ? total / static_cast<double>(s.docs) : 0;
  return s;
}

double LexicalStats::idf(const std::string& stem) const {
  const auto it = df.find(stem);
  const double n = it == df.end() ? 0 : static_cast<double>(it->second);
  return std::log(1.0 + (static_cast<double>(docs) - n + 0.5) / (n + 0.5));
}

nlohmann::ordered_json LexicalStats::to_json() const {
  nlohmann::ordered_json j;
  j["docs"] = docs;
  j["avg_len"] = avg_len;
  j["df"] = df;
  return j;
}

LexicalStats LexicalStats::from_json(const nlohmann::json& j, const std::string& origin) {
  LexicalStats s;
  try {
    s.docs = j.at("docs").get<int64_t>();
    s.avg_len = j.at("avg_len").get<double>();
    s.df = j.at("df").get<std::map<std::string, int64_t>>();
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(origin + ": not lexical statistics (needs docs, avg_len and df)");
  }
  if (s.docs < 0 || !(s.avg_len >= 0)) throw ModelError(origin + ": docs and avg_len must be >= 0");
  return s;
}

std::vector<float> lexical_features(const std::string& query, const std::string& text, const LexicalStats& stats) {
  std::vector<float> f(static_cast<size_t>(kNumLexicalFeatures), 0.0f);
  const auto q_words = lexical_words(query), t_words = lexical_words(text);
  const auto q = stems_of(q_words), t = stems_of(t_words);
  const std::unordered_set<std::string> t_exact(t_words.begin(), t_words.end()), t_stems(t.begin(), t.end());
  std::string t_joined;  // the result without separators: "deck over" finds "DeckOver"
  for (const auto& w : t_words) t_joined += w;
  f[11] = static_cast<float>(std::log1p(static_cast<double>(q.size())) / 3.0);
  f[12] = static_cast<float>(std::log1p(static_cast<double>(t.size())) / 4.0);
  if (q.empty()) return f;

  const double nq = static_cast<double>(q.size());
  double exact = 0, stemmed = 0, partial = 0, idf_all = 0, idf_hit = 0, bm25 = 0, numbers = 0, numbers_hit = 0;
  std::unordered_map<std::string, int> tf;
  for (const auto& w : t) ++tf[w];
  for (size_t i = 0; i < q.size(); ++i) {
    const bool hit = t_stems.count(q[i]) > 0;
    exact += t_exact.count(q_words[i]) > 0;
    stemmed += hit;
    partial += hit || (q_words[i].size() >= 3 && t_joined.find(q[i]) != std::string::npos);
    const double idf = stats.idf(q[i]);
    idf_all += idf;
    if (hit) {
      idf_hit += idf;
      // BM25 with k1 = 1.2, b = 0.75.
      const double n = tf[q[i]], len = static_cast<double>(t.size());
      const double norm = 1.2 * (0.25 + 0.75 * len / std::max(1.0, stats.avg_len));
      bm25 += idf * n * 2.2 / (n + norm);
    }
    if (is_number(q_words[i])) {
      ++numbers;
      numbers_hit += hit;
    }
  }
  f[0] = static_cast<float>(exact / nq);
  f[1] = static_cast<float>(stemmed / nq);
  f[2] = static_cast<float>(partial / nq);
  f[3] = static_cast<float>(idf_all > 0 ? idf_hit / idf_all : 0);
  f[4] = static_cast<float>(std::min(1.0, bm25 / 20.0));
  f[5] = static_cast<float>(t_stems.count(q.back()) > 0);
  f[6] = static_cast<float>(t_stems.count(q.front()) > 0);
  // Space-delimited on both ends, so that a find() matches whole words only.
  std::string q_phrase = " ", t_phrase = " ";
  for (const auto& w : q) q_phrase += w + " ";
  for (const auto& w : t) t_phrase += w + " ";
  f[7] = static_cast<float>(t_phrase.find(q_phrase) != std::string::npos);
  if (q.size() >= 2) {
    double bigrams = 0;
    for (size_t i = 0; i + 1 < q.size(); ++i)
      bigrams += t_phrase.find(" " + q[i] + " " + q[i + 1] + " ") != std::string::npos;
    f[8] = static_cast<float>(bigrams / static_cast<double>(q.size() - 1));
  }
  f[9] = static_cast<float>(numbers > 0);
  f[10] = static_cast<float>(numbers > 0 ? numbers_hit / numbers : 0);
  const std::unordered_set<std::string> q_stems(q.begin(), q.end());
  double covered = 0;
  for (const auto& w : t) covered += q_stems.count(w) > 0;
  f[13] = static_cast<float>(t.empty() ? 0 : covered / static_cast<double>(t.size()));
  return f;
}

}  // namespace dqe
