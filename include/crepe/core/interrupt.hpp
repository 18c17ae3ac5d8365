#pragma once
// Ctrl-C (SIGINT) and SIGTERM for long runs. The first signal only raises a flag that long loops
// check at safe points (before each batch of a block pass, between search evaluations), so work stops
// with consistent files and a message saying what was kept; a second one kills the process at once,
// as the user evidently wants. A SIGINT that the process inherited as ignored (a background job of
// a script) stays ignored, as POSIX asks of programs.
namespace crepe {

void install_interrupt_handler();
bool interrupt_requested();
// 128 + the signal that asked to stop (130 for SIGINT, 143 for SIGTERM).
int interrupt_exit_code();

// Thrown at a safe point after the signal.
struct Interrupted {};

// Throws Interrupted{} when a stop was requested.
void stop_if_interrupted();

}  // namespace crepe
