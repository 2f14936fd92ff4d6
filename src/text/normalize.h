// Undoing the character tricks that move a relevance score without changing what a reader sees:
// compatibility forms (fullwidth letters, mathematical alphanumerics), invisible and control
// characters (zero-width spaces and joiners, bidirectional overrides, soft hyphens), and
// look-alike letters from other scripts (a Cyrillic "а" in "аpple"). `dqe score --normalize`
// applies it before tokenizing; detection (infer/detect.h) counts what it finds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dqe {

// What the analysis of one text found.
struct TextFindings {
  int64_t invisible = 0;      // invisible or control characters (tab, newline and CR are spaces)
  int64_t mixed_words = 0;    // words with letters of two scripts or more (Latin and Cyrillic, ...)
  int64_t lookalikes = 0;     // letters of another script folded to the Latin letters they imitate
  bool compatibility = false; // NFKC changed the text (fullwidth, ligatures, math letters ...)
  bool changed() const { return invisible > 0 || lookalikes > 0 || compatibility; }
};

// Whether a code point is invisible or a control: format characters (Unicode category Cf:
// zero-width space and joiners, bidirectional embeddings, overrides and isolates, soft hyphen,
// word joiner, byte-order mark), controls other than tab, newline and CR, variation selectors,
// and the blank fillers that render as nothing (Hangul fillers, braille blank).
bool is_invisible(char32_t c);

// NFKC (utf8proc), then invisible characters removed (tab, newline and CR become spaces), then
// look-alikes folded: in a word (a run without spaces) holding a Latin letter, or whose letters
// all imitate Latin ones, each letter of another script whose Unicode confusable skeleton (ICU's
// uspoof_getSkeleton) is Latin is replaced by it. Latin text is unchanged, and so are words of
// other scripts with a letter that imitates none ("дом", "молоко"). Invalid
// UTF-8 bytes are dropped. findings, when given, receives what was found.
std::string normalize_text(std::string_view text, TextFindings* findings = nullptr);

// What normalize_text would find, without building the text.
TextFindings analyse_text(std::string_view text);

}  // namespace dqe
