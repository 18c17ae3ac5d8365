#include "crepe/cli/app.hpp"

namespace crepe::cli {
int run(int, char**) { return 0; }
}  // namespace crepe::cli
