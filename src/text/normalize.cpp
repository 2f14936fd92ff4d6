#include "text/normalize.h"

#include <cstdlib>
#include <memory>
#include <vector>

#include <unicode/uchar.h>
#include <unicode/uscript.h>
#include <unicode/uspoof.h>
#include <utf8proc.h>

namespace dqe {

namespace {

// Code points of valid UTF-8; invalid bytes are dropped.
std::u32string decode(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    utf8proc_int32_t c = 0;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                                    static_cast<utf8proc_ssize_t>(text.size() - i), &c);
    if (n <= 0) {
      ++i;
      continue;
    }
    out.push_back(static_cast<char32_t>(c));
    i += static_cast<size_t>(n);
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

std::string encode(const std::u32string& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) append_utf8(out, c);
  return out;
}

std::u32string nfkc(const std::u32string& cps) {
  const std::string utf8 = encode(cps);
  utf8proc_uint8_t* mapped = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()),
                              static_cast<utf8proc_ssize_t>(utf8.size()), &mapped,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (n < 0) return cps;  // cannot happen on valid code points; leave the text as it is
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(mapped, &std::free);
  return decode(std::string_view(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n)));
}

// ICU's spoof checker, opened once; its skeletons are read-only and safe to share.
const USpoofChecker* spoof_checker() {
  static const std::unique_ptr<USpoofChecker, decltype(&uspoof_close)> checker([] {
    UErrorCode status = U_ZERO_ERROR;
    USpoofChecker* c = uspoof_open(&status);
    return U_SUCCESS(status) ? c : nullptr;
  }(), &uspoof_close);
  return checker.get();
}

// The Latin letters (or digits) a letter of another script imitates, or "" when none.
std::u32string latin_lookalike(char32_t c) {
  const USpoofChecker* checker = spoof_checker();
  if (!checker) return {};
  UChar in[2];
  int32_t in_len = 0;
  UBool error = false;
  U16_APPEND(in, in_len, 2, static_cast<UChar32>(c), error);
  if (error) return {};
  UChar out[16];
  UErrorCode status = U_ZERO_ERROR;
  const int32_t n = uspoof_getSkeleton(checker, 0, in, in_len, out, 16, &status);
  if (U_FAILURE(status) || n <= 0) return {};
  std::u32string latin;
  for (int32_t i = 0; i < n; ++i) {
    const UChar u = out[i];
    const bool ascii_alnum = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9');
    if (!ascii_alnum) return {};
    latin.push_back(static_cast<char32_t>(u));
  }
  // Skeletons write I-like capitals (Greek Iota, Cyrillic I) as "l"; a capital imitates "I".
  if (latin.size() == 1 && latin[0] == U'l' && u_isupper(static_cast<UChar32>(c))) latin[0] = U'I';
  return latin;
}

// A letter's script, with the scripts written together in one word (Han, kana, Hangul) as one.
UScriptCode script_of(char32_t c) {
  UErrorCode status = U_ZERO_ERROR;
  const UScriptCode s = uscript_getScript(static_cast<UChar32>(c), &status);
  if (U_FAILURE(status)) return USCRIPT_COMMON;
  if (s == USCRIPT_HIRAGANA || s == USCRIPT_KATAKANA || s == USCRIPT_HANGUL) return USCRIPT_HAN;
  return s;
}

bool is_space(char32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || u_isUWhiteSpace(static_cast<UChar32>(c)); }

// Folds the look-alikes of one word in place; counts what it finds.
void fold_word(std::u32string& word, TextFindings& f, bool fold) {
  bool has_latin = false, all_imitate = true;
  int64_t letters = 0;
  UScriptCode first = USCRIPT_INVALID_CODE;
  bool mixed = false;
  std::vector<std::u32string> lookalikes(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    const char32_t c = word[i];
    if (!u_isalpha(static_cast<UChar32>(c))) continue;
    const UScriptCode s = script_of(c);
    if (s == USCRIPT_COMMON || s == USCRIPT_INHERITED) continue;
    ++letters;
    if (first == USCRIPT_INVALID_CODE) first = s;
    else if (s != first) mixed = true;
    if (s == USCRIPT_LATIN) {
      has_latin = true;
      continue;
    }
    lookalikes[i] = latin_lookalike(c);
    if (lookalikes[i].empty()) all_imitate = false;
  }
  if (mixed) ++f.mixed_words;
  if (letters == 0 || !(has_latin || all_imitate)) return;
  std::u32string out;
  out.reserve(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    if (lookalikes[i].empty()) {
      out.push_back(word[i]);
    } else {
      ++f.lookalikes;
      out += lookalikes[i];
    }
  }
  if (fold) word = std::move(out);
}

std::string run(std::string_view text, TextFindings* findings, bool build) {
  TextFindings f;
  const std::u32string raw = decode(text);
  const std::u32string compat = nfkc(raw);
  f.compatibility = compat != raw;
  std::u32string visible;
  visible.reserve(compat.size());
  for (char32_t c : compat) {
    if (c == '\t' || c == '\n' || c == '\r') visible.push_back(' ');
    else if (is_invisible(c)) ++f.invisible;
    else visible.push_back(c);
  }
  std::u32string out;
  out.reserve(visible.size());
  size_t i = 0;
  while (i < visible.size()) {
    if (is_space(visible[i])) {
      out.push_back(visible[i++]);
      continue;
    }
    size_t j = i;
    while (j < visible.size() && !is_space(visible[j])) ++j;
    std::u32string word = visible.substr(i, j - i);
    fold_word(word, f, build);
    out += word;
    i = j;
  }
  if (findings) *findings = f;
  return build ? encode(out) : std::string();
}

}  // namespace

bool is_invisible(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  const auto category = u_charType(static_cast<UChar32>(c));
  if (category == U_FORMAT_CHAR || category == U_CONTROL_CHAR) return true;
  if ((c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xE0100 && c <= 0xE01EF)) return true;  // variation selectors
  return c == 0x115F || c == 0x1160 || c == 0x3164 || c == 0xFFA0 || c == 0x2800 || c == 0x180E;
}

std::string normalize_text(std::string_view text, TextFindings* findings) { return run(text, findings, true); }

TextFindings analyse_text(std::string_view text) {
  TextFindings f;
  run(text, &f, false);
  return f;
}

}  // namespace dqe
