#pragma once
// Strict parsing of numbers written in option values and lists: the whole text must be the
// number ("3.5", "2x" or " 4" are not integers), unlike std::stoll, which stops where it can.
#include <cstdint>
#include <optional>
#include <string>

namespace crepe {

// The integer `text` spells (an optional '-' and decimal digits only), or nullopt.
std::optional<int64_t> parse_integer(const std::string& text);

}  // namespace crepe
