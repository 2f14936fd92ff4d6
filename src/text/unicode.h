// BERT's text normalisation (Hugging Face's BasicTokenizer), shared by the WordPiece
// tokenizer and the vocabulary builder so that both see the same words.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

namespace dqe::detail {

// Splits text into BERT's basic words, as Python's BasicTokenizer does: control
// characters, U+0000 and U+FFFD dropped, CJK ideographs surrounded by spaces, NFC,
// split on whitespace; when lower_case, each word lower-cased (full Unicode, final
// sigma included), NFD'd and stripped of non-spacing marks; punctuation split off
// as one-character words. Invalid UTF-8 bytes are dropped like U+FFFD.
// Calls emit once per word, in order; the view is valid only during the call.
void basic_tokenize(std::string_view text, bool lower_case,
                    const std::function<void(std::string_view)>& emit);

// Number of code points in valid UTF-8 (what Python's len() counts).
size_t utf8_length(std::string_view utf8);

// Whether byte i of valid UTF-8 starts a code point.
inline bool is_code_point_start(std::string_view utf8, size_t i) {
  return (static_cast<unsigned char>(utf8[i]) & 0xC0) != 0x80;
}

}  // namespace dqe::detail
