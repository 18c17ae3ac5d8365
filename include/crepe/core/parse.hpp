#pragma once
// Strict parsing of numbers written in option values and lists: the whole text must be the
// number ("3.5", "2x" or " 4" are not integers), unlike std::stoll, which stops where it can; and
// the short text of a number for messages.
#include <cstdint>
#include <optional>
#include <string>

namespace crepe {

// The integer `text` spells (an optional '-' and decimal digits only), or nullopt.
std::optional<int64_t> parse_integer(const std::string& text);

// `value` as a message shows it: up to 10 significant digits, exponent form when very large or small
// ("0.5", "1e+300", "nan"), where std::to_string would print 0.500000 or 301 digits.
std::string number_text(double value);

}  // namespace crepe
