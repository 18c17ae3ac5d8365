#include "crepe/core/error.hpp"

namespace crepe {

void throw_input_error(const std::string& where, const std::string& what) {
  if (where.empty()) throw InputError(what);
  throw InputError(where + ": " + what);
}

}  // namespace crepe
