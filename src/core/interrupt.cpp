#include "crepe/core/interrupt.hpp"

#include <atomic>
#include <csignal>

namespace crepe {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) {
  g_interrupted = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C terminates immediately
}

}  // namespace

void install_interrupt_handler() { std::signal(SIGINT, on_sigint); }

bool interrupt_requested() { return g_interrupted; }

}  // namespace crepe
