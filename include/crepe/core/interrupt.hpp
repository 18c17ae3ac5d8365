#pragma once
// Ctrl-C handling for long runs. The first SIGINT only raises a flag that long loops check at safe
// points (between blocks), so work stops with consistent files and a message saying how to resume;
// a second SIGINT kills the process at once, as the user evidently wants.
namespace crepe {

void install_interrupt_handler();
bool interrupt_requested();

// Thrown at a safe point after SIGINT.
struct Interrupted {
  long long completed_blocks;
};

}  // namespace crepe
