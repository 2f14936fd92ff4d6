#include "dqe/vocab_builder.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <queue>
#include <set>
#include <string_view>
#include <unordered_map>

#include "base/progress.h"
#include "dqe/errors.h"
#include "io/claim.h"
#include "io/input_file.h"
#include "io/output.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/unicode.h"

namespace dqe {
namespace {

constexpr const char* kSpecialTokens[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
constexpr std::string_view kContinuation = "##";

using Symbol = uint32_t;
using Pair = uint64_t;  // left symbol in the high half, right in the low half

Pair make_pair(Symbol left, Symbol right) { return (static_cast<Pair>(left) << 32) | right; }
Symbol left_of(Pair pair) { return static_cast<Symbol>(pair >> 32); }
Symbol right_of(Pair pair) { return static_cast<Symbol>(pair & 0xFFFFFFFFu); }

// BPE over distinct words with "##" continuation pieces, as Hugging Face's
// WordPieceTrainer does. Pair counts are kept up to date incrementally: a merge only
// revisits the words that contain the merged pair, and the priority queue is lazy
// (an entry whose count went stale is re-queued with the current count when popped).
class WordPieceTrainer {
 public:
  WordPieceTrainer(const std::unordered_map<std::string, int64_t>& word_counts, int64_t min_frequency)
      : threshold_(std::max<int64_t>(min_frequency, 1)), queue_(QueueOrder{&pieces_}) {
    for (const char* token : kSpecialTokens) add_piece(token);
    add_alphabet(word_counts);
    for (const auto& [word, count] : word_counts) add_word(word, count);
    for (const auto& [pair, count] : pair_counts_) {
      if (count >= threshold_) queue_.push({count, pair});
    }
  }

  std::vector<std::string> train(size_t vocab_size) {
    Progress progress("tokenizer", static_cast<int64_t>(vocab_size), "piece");
    while (pieces_.size() < vocab_size && !queue_.empty()) {
      progress.update(static_cast<int64_t>(pieces_.size()));
      const Candidate top = queue_.top();
      queue_.pop();
      const int64_t count = count_of(top.pair);
      if (count != top.count) {
        if (count >= threshold_) queue_.push({count, top.pair});
        continue;
      }
      merge(top.pair);
    }
    progress.finish();
    return std::move(pieces_);
  }

 private:
  struct Word {
    std::vector<Symbol> symbols;
    int64_t count;
  };
  struct Candidate {
    int64_t count;
    Pair pair;
  };
  // Most frequent pair on top; among equals, the smallest (left, right) by bytes.
  struct QueueOrder {
    const std::vector<std::string>* pieces;
    bool operator()(const Candidate& a, const Candidate& b) const {
      if (a.count != b.count) return a.count < b.count;
      const auto& p = *pieces;
      const int left = p[left_of(a.pair)].compare(p[left_of(b.pair)]);
      if (left != 0) return left > 0;
      return p[right_of(a.pair)] > p[right_of(b.pair)];
    }
  };

  Symbol add_piece(const std::string& piece) {
    const auto [it, added] = ids_.emplace(piece, static_cast<Symbol>(pieces_.size()));
    if (added) pieces_.push_back(piece);
    return it->second;
  }

  // Every character seen, both as a word start and as a continuation, in code point
  // order (UTF-8 byte order is code point order), so any text made of these characters
  // encodes without [UNK], whatever position a character takes in an unseen word.
  void add_alphabet(const std::unordered_map<std::string, int64_t>& word_counts) {
    std::set<std::string> chars;
    for (const auto& entry : word_counts) {
      const std::string& word = entry.first;
      for (size_t begin = 0; begin < word.size();) {
        size_t end = begin + 1;
        while (end < word.size() && !detail::is_code_point_start(word, end)) ++end;
        chars.insert(word.substr(begin, end - begin));
        begin = end;
      }
    }
    for (const std::string& c : chars) add_piece(c);
    for (const std::string& c : chars) add_piece(std::string(kContinuation) + c);
  }

  void add_word(const std::string& word, int64_t count) {
    Word w{{}, count};
    for (size_t begin = 0; begin < word.size();) {
      size_t end = begin + 1;
      while (end < word.size() && !detail::is_code_point_start(word, end)) ++end;
      const std::string c = word.substr(begin, end - begin);
      w.symbols.push_back(ids_.at(begin == 0 ? c : std::string(kContinuation) + c));
      begin = end;
    }
    if (w.symbols.size() < 2) return;  // nothing to merge
    const auto index = static_cast<uint32_t>(words_.size());
    for (size_t i = 0; i + 1 < w.symbols.size(); ++i) {
      const Pair pair = make_pair(w.symbols[i], w.symbols[i + 1]);
      pair_counts_[pair] += count;
      where_[pair].push_back(index);
    }
    words_.push_back(std::move(w));
  }

  int64_t count_of(Pair pair) const {
    const auto it = pair_counts_.find(pair);
    return it == pair_counts_.end() ? 0 : it->second;
  }

  void merge(Pair pair) {
    const Symbol a = left_of(pair), b = right_of(pair);
    std::string_view tail = pieces_[b];
    if (tail.substr(0, kContinuation.size()) == kContinuation) tail.remove_prefix(kContinuation.size());
    const Symbol merged = add_piece(pieces_[a] + std::string(tail));

    std::vector<uint32_t> word_indices = std::move(where_[pair]);
    where_.erase(pair);
    std::sort(word_indices.begin(), word_indices.end());
    word_indices.erase(std::unique(word_indices.begin(), word_indices.end()), word_indices.end());
    std::vector<Pair> created;
    for (uint32_t index : word_indices) merge_in_word(index, a, b, merged, created);

    std::sort(created.begin(), created.end());
    created.erase(std::unique(created.begin(), created.end()), created.end());
    for (Pair p : created) {
      const int64_t count = count_of(p);
      if (count >= threshold_) queue_.push({count, p});
    }
  }

  // Replaces every non-overlapping (a, b), left to right, and updates the counts of the
  // pairs around each replacement. The left neighbour is read from the rewritten word,
  // so two adjacent replacements count (merged, merged) once and (merged, a) not at all.
  void merge_in_word(uint32_t index, Symbol a, Symbol b, Symbol merged, std::vector<Pair>& created) {
    Word& word = words_[index];
    auto change = [&](Pair p, int64_t delta) {
      auto it = pair_counts_.emplace(p, 0).first;
      it->second += delta;
      if (it->second == 0) pair_counts_.erase(it);
      if (delta > 0) {
        where_[p].push_back(index);
        created.push_back(p);
      }
    };
    const std::vector<Symbol>& in = word.symbols;
    std::vector<Symbol> out;
    out.reserve(in.size());
    for (size_t i = 0; i < in.size();) {
      if (i + 1 < in.size() && in[i] == a && in[i + 1] == b) {
        change(make_pair(a, b), -word.count);
        if (!out.empty()) {
          change(make_pair(out.back(), a), -word.count);
          change(make_pair(out.back(), merged), word.count);
        }
        if (i + 2 < in.size()) {
          change(make_pair(b, in[i + 2]), -word.count);
          change(make_pair(merged, in[i + 2]), word.count);
        }
        out.push_back(merged);
        i += 2;
      } else {
        out.push_back(in[i]);
        ++i;
      }
    }
    word.symbols = std::move(out);
  }

  const int64_t threshold_;
  std::vector<std::string> pieces_;
  std::unordered_map<std::string, Symbol> ids_;
  std::vector<Word> words_;
  std::unordered_map<Pair, int64_t> pair_counts_;
  // Words that contained each pair when it was counted (may be stale or repeated).
  std::unordered_map<Pair, std::vector<uint32_t>> where_;
  std::priority_queue<Candidate, std::vector<Candidate>, QueueOrder> queue_;
};

}  // namespace

std::vector<std::string> build_wordpiece_vocab(const std::vector<std::string>& texts,
                                               const VocabBuilderOptions& options) {
  constexpr auto kSpecialCount = static_cast<int64_t>(std::size(kSpecialTokens));
  if (options.vocab_size <= kSpecialCount) {
    throw ConfigError("--vocab-size must be > " + std::to_string(kSpecialCount) + " (the special tokens), got " +
                      std::to_string(options.vocab_size));
  }
  std::unordered_map<std::string, int64_t> word_counts;
  std::string key;
  for (const std::string& text : texts) {
    detail::basic_tokenize(text, options.lower_case, [&](std::string_view word) {
      key.assign(word);
      ++word_counts[key];
    });
  }
  return WordPieceTrainer(word_counts, options.min_frequency).train(static_cast<size_t>(options.vocab_size));
}

}  // namespace dqe

namespace dqe {

void TokenizerTrainConfig::validate() const {
  if (corpus.empty()) throw ConfigError("--corpus needs at least one file");
  if (out_dir.empty()) throw ConfigError("--out is required");
  if (type != "wordpiece" && type != "unigram" && type != "bpe")
    throw ConfigError("--type must be wordpiece, unigram or bpe, got \"" + type + "\"");
  if (vocab_size < 10 || vocab_size > 1000000) throw ConfigError("--vocab-size must be between 10 and 1000000");
  if (min_frequency < 1 || min_frequency > 1000000000) throw ConfigError("--min-frequency must be between 1 and 1000000000");
}

TokenizerTrainResult train_tokenizer(const TokenizerTrainConfig& cfg) {
  cfg.validate();
  namespace fs = std::filesystem;
  for (const auto& file : cfg.corpus) check_regular_input(file, "corpus", "a corpus is a file that can be read again");
  std::error_code ec;
  fs::create_directories(cfg.out_dir, ec);
  if (ec) throw IoError(cfg.out_dir + ": cannot create directory (" + ec.message() + ")");
  // A tokenizer is what a model's ids mean: one is never replaced by another silently, nor
  // joined by a second one that another process trains into the same directory meanwhile.
  const DirectoryClaim claim(cfg.out_dir, "--out");
  for (const char* name : {"vocab.txt", "tokenizer.model"})
    if (fs::exists(fs::path(cfg.out_dir) / name))
      throw ConfigError("--out " + cfg.out_dir + " already holds " + name +
                        "; choose another directory (a tokenizer is not replaced)");
  TokenizerTrainResult result;
  if (cfg.type != "wordpiece") {
    const fs::path path = fs::path(cfg.out_dir) / "tokenizer.model";
    const std::string tmp = path.string() + ".tmp-" + std::to_string(::getpid());
    train_sentencepiece(cfg.corpus, tmp, static_cast<int>(cfg.vocab_size), cfg.type, cfg.lower_case);
    if (!rename_no_replace(tmp, path.string())) {
      fs::remove(tmp, ec);
      throw ConfigError("--out " + cfg.out_dir + " came to hold tokenizer.model while this one trained; it is left as it is");
    }
    result.path = path.string();
    result.vocab_size = SentencePieceTokenizer(result.path).vocab_size();
    return result;
  }
  std::vector<std::string> texts;
  for (const auto& file : cfg.corpus) {
    std::ifstream in(file, std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t\v\f") != std::string::npos) texts.push_back(std::move(line));
    }
    if (in.bad()) throw IoError(file + ": read error");
  }
  if (texts.empty()) throw DataError("no text in the corpus files");
  result.lines = static_cast<int64_t>(texts.size());
  VocabBuilderOptions options;
  options.vocab_size = cfg.vocab_size;
  options.lower_case = cfg.lower_case;
  options.min_frequency = cfg.min_frequency;
  const std::vector<std::string> vocab = build_wordpiece_vocab(texts, options);
  const fs::path path = fs::path(cfg.out_dir) / "vocab.txt";
  std::string text;
  for (const auto& token : vocab) text += token + '\n';
  write_file_atomic(path.string(), text);
  // Hugging Face's BertTokenizer reads the casing from here, and so does dqe.
  write_file_atomic((fs::path(cfg.out_dir) / "tokenizer_config.json").string(),
                    std::string("{\n  \"do_lower_case\": ") + (cfg.lower_case ? "true" : "false") +
                        ",\n  \"tokenizer_class\": \"BertTokenizer\"\n}\n");
  result.path = path.string();
  result.vocab_size = static_cast<int64_t>(vocab.size());
  return result;
}

}  // namespace dqe
