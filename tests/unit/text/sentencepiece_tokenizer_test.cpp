#include "text/sentencepiece_tokenizer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe {
namespace {

namespace fs = std::filesystem;

// A few hundred product titles, generated deterministically.
std::vector<std::string> product_titles() {
  const std::vector<std::string> brands = {"DeWalt", "Makita", "Behr", "Delta", "Husky", "Ryobi", "Milwaukee"};
  const std::vector<std::string> colors = {"Red", "Black", "White", "Brushed Nickel", "Oil-Rubbed Bronze", "Gray"};
  const std::vector<std::string> items = {"Cordless Drill", "Angle Bracket", "Shower Head", "Paint Brush",
                                          "Tool Box", "Deck Stain", "Faucet", "Circular Saw", "Work Light"};
  const std::vector<std::string> sizes = {"12 in.", "1-gal.", "20V MAX", "3/4 in.", "(4-Pack)", "5 ft."};
  std::vector<std::string> lines;
  for (size_t i = 0; i < 400; ++i) {
    lines.push_back(brands[i % brands.size()] + " " + colors[(i / 3) % colors.size()] + " " +
                    items[(i * 7) % items.size()] + " " + sizes[(i / 5) % sizes.size()]);
  }
  return lines;
}

// Two models trained on product_titles(), in a directory that lives as long as they do.
struct TrainedModels {
  TrainedModels() {
    const std::string corpus = dir.path("corpus.txt");
    std::ofstream out(corpus);
    for (const std::string& line : product_titles()) out << line << '\n';
    out.close();
    train_sentencepiece({corpus}, unigram, 200, "unigram");
    train_sentencepiece({corpus}, bpe, 200, "bpe");
  }
  test::TempDir dir;
  std::string unigram = dir.path("unigram.model");
  std::string bpe = dir.path("bpe.model");
};

// Trained once per process: every test below reads the same two models.
const TrainedModels& models() {
  static const TrainedModels trained;
  return trained;
}

const std::vector<std::string> kTexts = {"DeWalt 20V MAX Cordless Drill", "oil-rubbed bronze shower head",
                                         "Milwaukee Tool Box (4-Pack)", "unseen words: zebra quartz"};

TEST(SentencePieceTokenizer, TrainedModelsRoundTripIds) {
  for (const std::string& path : {models().unigram, models().bpe}) {
    SCOPED_TRACE(path);
    const SentencePieceTokenizer tok(path);
    EXPECT_EQ(tok.kind(), "sentencepiece");
    EXPECT_GT(tok.vocab_size(), 50);
    EXPECT_LE(tok.vocab_size(), 200);
    for (const std::string& text : kTexts) {
      const std::vector<int64_t> ids = tok.encode(text);
      const std::vector<std::string> pieces = tok.tokenize(text);
      ASSERT_EQ(ids.size(), pieces.size());
      ASSERT_FALSE(ids.empty());
      for (size_t i = 0; i < ids.size(); ++i) {
        // An unknown character keeps its own surface as the piece, with the unk id.
        EXPECT_EQ(tok.id_to_piece(ids[i]), ids[i] == tok.unk_id() ? "<unk>" : pieces[i]);
      }
    }
    EXPECT_EQ(tok.id_to_piece(-1), "");
    EXPECT_EQ(tok.id_to_piece(tok.vocab_size()), "");
  }
}

TEST(SentencePieceTokenizer, SpecialIdsAreTheUserDefinedPieces) {
  for (const std::string& path : {models().unigram, models().bpe}) {
    SCOPED_TRACE(path);
    const SentencePieceTokenizer tok(path);
    EXPECT_EQ(tok.id_to_piece(tok.pad_id()), "[PAD]");
    EXPECT_EQ(tok.id_to_piece(tok.cls_id()), "[CLS]");
    EXPECT_EQ(tok.id_to_piece(tok.sep_id()), "[SEP]");
    EXPECT_EQ(tok.id_to_piece(tok.mask_id()), "[MASK]");
    EXPECT_EQ(tok.id_to_piece(tok.unk_id()), "<unk>");
    // User-defined pieces are matched in the input as a whole.
    EXPECT_EQ(tok.tokenize("[MASK]").back(), "[MASK]");
  }
}

TEST(SentencePieceTokenizer, EncodePairLayout) {
  const SentencePieceTokenizer tok(models().unigram);
  const std::vector<int64_t> a = tok.encode(kTexts[0]), b = tok.encode(kTexts[1]);
  const Encoding enc = tok.encode_pair(kTexts[0], kTexts[1], 512);

  std::vector<int64_t> ids = {tok.cls_id()};
  ids.insert(ids.end(), a.begin(), a.end());
  ids.push_back(tok.sep_id());
  std::vector<int64_t> types(ids.size(), 0);
  ids.insert(ids.end(), b.begin(), b.end());
  ids.push_back(tok.sep_id());
  types.resize(ids.size(), 1);
  EXPECT_EQ(enc.ids, ids);
  EXPECT_EQ(enc.type_ids, types);

  EXPECT_EQ(tok.encode_pair(kTexts[0], kTexts[1], 8).ids.size(), 8u);
}

TEST(SentencePieceTokenizer, SaveAndReloadGiveIdenticalIds) {
  for (const std::string& path : {models().unigram, models().bpe}) {
    SCOPED_TRACE(path);
    const SentencePieceTokenizer tok(path);
    test::TempDir dir;
    EXPECT_EQ(tok.save(dir.path()), "tokenizer.model");
    EXPECT_EQ(test::read_text(dir.path("tokenizer.model")), test::read_text(path));
    const auto reloaded = load_tokenizer(dir.path(), /*lower_case=*/true);
    EXPECT_EQ(reloaded->kind(), "sentencepiece");
    EXPECT_EQ(reloaded->vocab_size(), tok.vocab_size());
    for (const std::string& text : kTexts) EXPECT_EQ(reloaded->encode(text), tok.encode(text)) << text;
    EXPECT_EQ(load_tokenizer_file(path, true)->encode(kTexts[0]), tok.encode(kTexts[0]));
  }
}

TEST(SentencePieceTokenizer, TrainingIsDeterministic) {
  test::TempDir dir;
  const std::string corpus = dir.path("corpus.txt");
  std::ofstream out(corpus);
  for (const std::string& line : product_titles()) out << line << '\n';
  out.close();
  const std::string again = dir.path("again.model");
  train_sentencepiece({corpus}, again, 200, "unigram");
  EXPECT_EQ(test::read_text(again), test::read_text(models().unigram));
}

TEST(SentencePieceTokenizer, BadModelFilesThrowModelErrorNamingThem) {
  test::TempDir dir;
  const std::string missing = dir.path("missing.model");
  const std::string garbage = dir.path("garbage.model");
  std::ofstream(garbage) << "this is not a protobuf";
  for (const std::string& path : {missing, garbage}) {
    try {
      SentencePieceTokenizer tok(path);
      FAIL() << "expected ModelError for " << path;
    } catch (const ModelError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

// sentencepiece's own log lines, which name its sources ("bpe_model_trainer.cc(242)
// LOG(WARNING) No valid symbol found"), do not reach the user.
TEST(SentencePieceTokenizer, TrainingPrintsNothingOfSentencepiecesInternals) {
  test::TempDir dir;
  test::write_text(dir.path("tiny.txt"), "red chair\nblue lamp\n");
  testing::internal::CaptureStderr();
  train_sentencepiece({dir.path("tiny.txt")}, dir.path("m.model"), 5000, "bpe");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find(".cc("), std::string::npos) << err;
  EXPECT_GT(SentencePieceTokenizer(dir.path("m.model")).vocab_size(), 8);
}

TEST(SentencePieceTokenizer, TrainRejectsBadArguments) {
  test::TempDir dir;
  const std::string model = dir.path("m.model");
  const std::string missing = dir.path("missing.txt");
  EXPECT_THROW(train_sentencepiece({missing}, model, 100, "wordpiece"), ConfigError);
  EXPECT_THROW(train_sentencepiece({missing}, model, 0, "bpe"), ConfigError);
  EXPECT_THROW(train_sentencepiece({}, model, 100, "bpe"), ConfigError);
  try {
    train_sentencepiece({missing}, model, 100, "bpe");
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(model));

  // A corpus with no line to learn from (blank, or longer than sentencepiece reads) says so;
  // sentencepiece itself failed without a reason, and the message named a temporary file.
  test::write_text(dir.path("blank.txt"), "\n  \n" + std::string(5000, 'x') + "\n");
  for (const char* type : {"unigram", "bpe"}) {
    try {
      train_sentencepiece({dir.path("blank.txt")}, model, 100, type);
      ADD_FAILURE() << type << " trained on no text";
    } catch (const DataError& e) {
      EXPECT_EQ(std::string(e.what()), dir.path("blank.txt") + ": no line of text to learn from (3 lines: 2 blank, 1 "
                                                               "longer than the 4192 bytes sentencepiece reads)");
    }
  }
  EXPECT_FALSE(fs::exists(model));
}

// sentencepiece and LibTorch both use protobuf; linking Debian's shared libsentencepiece
// (with its own protobuf) next to LibTorch breaks at load or first use. This guards the
// static build against the system protobuf.
TEST(SentencePieceTokenizer, CoexistsWithLibTorchInOneProcess) {
  const SentencePieceTokenizer tok(models().unigram);
  const std::vector<int64_t> ids = tok.encode_pair(kTexts[0], kTexts[1], 32).ids;

  torch::manual_seed(0);
  torch::nn::Embedding embedding(tok.vocab_size(), 16);
  torch::nn::Linear linear(16, 3);
  const torch::Tensor input = torch::tensor(ids, torch::kInt64).unsqueeze(0);
  const torch::Tensor output = linear(embedding(input));

  EXPECT_EQ(output.sizes().vec(), (std::vector<int64_t>{1, static_cast<int64_t>(ids.size()), 3}));
  EXPECT_TRUE(torch::isfinite(output).all().item<bool>());
  EXPECT_FALSE(SentencePieceTokenizer(models().bpe).encode(kTexts[2]).empty());
}

}  // namespace
}  // namespace dqe
