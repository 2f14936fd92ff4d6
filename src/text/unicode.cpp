#include "text/unicode.h"

#include <algorithm>
#include <string>
#include <vector>

#include <utf8proc.h>

namespace dqe::detail {
namespace {

using CodePoints = std::vector<utf8proc_int32_t>;

bool is_ascii_punctuation(utf8proc_int32_t cp) {
  return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
         (cp >= 123 && cp <= 126);
}

bool is_punctuation(utf8proc_int32_t cp) {
  if (is_ascii_punctuation(cp)) return true;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

// Every "C" category (Cc, Cf, Cs, Co, Cn) except \t \n \r, as Hugging Face does.
bool is_control(utf8proc_int32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN:
      return true;
    default:
      return false;
  }
}

bool is_whitespace(utf8proc_int32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' ||
         utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

// Python's str.split() also splits on these two: the only whitespace it knows that
// survives cleaning (other whitespace is Zs, turned into spaces, or Cc, dropped).
bool is_split_point(utf8proc_int32_t cp) { return cp == ' ' || cp == 0x2028 || cp == 0x2029; }

bool is_cjk(utf8proc_int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Unicode's Cased property (Lowercase, Uppercase or Lt), which utf8proc lacks: letters
// and anything with a case mapping, plus the Lo/So members of Other_Lowercase and
// Other_Uppercase (the Lm members are case-ignorable, so final sigma never asks).
bool is_cased(utf8proc_int32_t cp) {
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
      return true;
    default:
      break;
  }
  return utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp || cp == 0xAA || cp == 0xBA ||
         (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
         (cp >= 0x1F170 && cp <= 0x1F189);
}

// Unicode's Case_Ignorable property: marks, format characters, modifiers, and the
// Word_Break MidLetter / MidNumLet / Single_Quote characters.
bool is_case_ignorable(utf8proc_int32_t cp) {
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      break;
  }
  switch (cp) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4:
    case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52:
    case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
      return true;
    default:
      return false;
  }
}

// Python's str.lower() of word[i]. Capital sigma becomes final sigma after a cased
// letter when no cased letter follows (case-ignorable characters skipped both ways).
// The only other full (multi-character) lower-casing, U+0130 -> i + U+0307, equals the
// simple mapping once non-spacing marks are stripped, which always follows here.
utf8proc_int32_t python_lower(const CodePoints& word, size_t i) {
  if (word[i] != 0x3A3) return utf8proc_tolower(word[i]);
  size_t j = i;
  while (j > 0 && is_case_ignorable(word[j - 1])) --j;
  bool final_sigma = j > 0 && is_cased(word[j - 1]);
  if (final_sigma) {
    size_t k = i + 1;
    while (k < word.size() && is_case_ignorable(word[k])) ++k;
    final_sigma = k == word.size() || !is_cased(word[k]);
  }
  return final_sigma ? 0x3C2 : 0x3C3;
}

// Canonical decomposition in canonical order (NFD).
void decompose(const CodePoints& in, CodePoints& out) {
  constexpr utf8proc_option_t kOptions =
      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
  // Room for any canonical decomposition; a longer one would be reported and retried.
  constexpr utf8proc_ssize_t kRoom = 4;
  out.clear();
  int boundclass = UTF8PROC_BOUNDCLASS_START;
  for (utf8proc_int32_t cp : in) {
    const size_t at = out.size();
    out.resize(at + kRoom);
    utf8proc_ssize_t n = utf8proc_decompose_char(cp, out.data() + at, kRoom, kOptions, &boundclass);
    if (n > kRoom) {
      out.resize(at + static_cast<size_t>(n));
      n = utf8proc_decompose_char(cp, out.data() + at, n, kOptions, &boundclass);
    }
    out.resize(at + static_cast<size_t>(n));
  }
  // Canonical ordering: a stable sort of each run of combining marks (class > 0) by class,
  // as utf8proc_decompose does, but O(n log n) on hostile runs of thousands of marks.
  auto ccc = [](utf8proc_int32_t cp) { return utf8proc_get_property(cp)->combining_class; };
  for (size_t start = 0; start < out.size();) {
    if (ccc(out[start]) == 0) {
      ++start;
      continue;
    }
    size_t end = start;
    while (end < out.size() && ccc(out[end]) != 0) ++end;
    std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(start), out.begin() + static_cast<std::ptrdiff_t>(end),
                     [&](utf8proc_int32_t a, utf8proc_int32_t b) { return ccc(a) < ccc(b); });
    start = end;
  }
}

// NFC, in place.
void compose(CodePoints& cps, CodePoints& scratch) {
  decompose(cps, scratch);
  const utf8proc_ssize_t n = utf8proc_normalize_utf32(
      scratch.data(), static_cast<utf8proc_ssize_t>(scratch.size()),
      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  scratch.resize(static_cast<size_t>(n));
  cps.swap(scratch);
}

void append_utf8(std::string& out, utf8proc_int32_t cp) {
  utf8proc_uint8_t bytes[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(cp, bytes);
  out.append(reinterpret_cast<const char*>(bytes), static_cast<size_t>(n));
}

// Pure ASCII needs no tables and NFC/NFD are identities on it, so this path gives the
// same words as the general one, several times faster.
void basic_tokenize_ascii(std::string_view text, bool lower_case,
                          const std::function<void(std::string_view)>& emit) {
  std::string word;
  auto flush = [&] {
    if (!word.empty()) emit(word);
    word.clear();
  };
  for (const char& ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      flush();
    } else if (c < 0x20 || c == 0x7F) {
      continue;  // control: dropped, so it joins its neighbours
    } else if (is_ascii_punctuation(c)) {
      flush();
      emit(std::string_view(&ch, 1));
    } else {
      word.push_back(lower_case && c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : ch);
    }
  }
  flush();
}

void basic_tokenize_unicode(std::string_view text, bool lower_case,
                            const std::function<void(std::string_view)>& emit) {
  CodePoints cleaned, scratch, word, folded;
  cleaned.reserve(text.size());
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  for (size_t at = 0; at < text.size();) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(bytes + at, static_cast<utf8proc_ssize_t>(text.size() - at), &cp);
    if (n < 0) {
      cp = 0xFFFD;
      n = 1;
    }
    at += static_cast<size_t>(n);
    if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
    if (is_cjk(cp)) {
      cleaned.insert(cleaned.end(), {' ', cp, ' '});
    } else {
      cleaned.push_back(is_whitespace(cp) ? ' ' : cp);
    }
  }
  compose(cleaned, scratch);

  std::string piece;
  auto flush = [&] {
    if (!piece.empty()) emit(piece);
    piece.clear();
  };
  for (size_t begin = 0; begin < cleaned.size();) {
    size_t end = begin;
    while (end < cleaned.size() && !is_split_point(cleaned[end])) ++end;
    word.assign(cleaned.begin() + static_cast<std::ptrdiff_t>(begin),
                cleaned.begin() + static_cast<std::ptrdiff_t>(end));
    begin = end + 1;
    if (word.empty()) continue;
    if (lower_case) {
      folded.resize(word.size());
      for (size_t i = 0; i < word.size(); ++i) folded[i] = python_lower(word, i);
      decompose(folded, word);
      word.erase(std::remove_if(word.begin(), word.end(),
                                [](utf8proc_int32_t cp) {
                                  return utf8proc_category(cp) == UTF8PROC_CATEGORY_MN;
                                }),
                 word.end());
    }
    for (utf8proc_int32_t cp : word) {
      if (is_punctuation(cp)) {
        flush();
        append_utf8(piece, cp);
        flush();
      } else {
        append_utf8(piece, cp);
      }
    }
    flush();
  }
}

}  // namespace

void basic_tokenize(std::string_view text, bool lower_case,
                    const std::function<void(std::string_view)>& emit) {
  for (char ch : text) {
    if (static_cast<unsigned char>(ch) >= 0x80) return basic_tokenize_unicode(text, lower_case, emit);
  }
  basic_tokenize_ascii(text, lower_case, emit);
}

size_t utf8_length(std::string_view utf8) {
  size_t n = 0;
  for (size_t i = 0; i < utf8.size(); ++i) n += is_code_point_start(utf8, i);
  return n;
}

}  // namespace dqe::detail
