#pragma once
// Errors crepe reports to its user.
//
// InputError is the one exception type for anything wrong with what the user gave us: a file
// (checkpoint, config, tokenizer, text), an option value, or data that does not fit the request.
// Its message is a single line that names the file or option and says what is wrong; the CLI
// prints it as-is and exits with code 2. Anything else that escapes is a bug in crepe.
#include <stdexcept>
#include <string>

namespace crepe {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An InputError that shows only once the work is under way, in what the input computes to (NaN or
// Inf activations). Resuming could not get past it, so a run discards its partial work.
class NumericalInputError : public InputError {
 public:
  using InputError::InputError;
};

// "where: what" — the house format of every InputError message.
[[noreturn]] void throw_input_error(const std::string& where, const std::string& what);

// Throws InputError(where: what) unless `condition` holds.
inline void require(bool condition, const std::string& where, const std::string& what) {
  if (!condition) throw_input_error(where, what);
}

}  // namespace crepe
