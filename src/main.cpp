#include "crepe/cli/app.hpp"

int main(int argc, char** argv) { return crepe::cli::run(argc, argv); }
