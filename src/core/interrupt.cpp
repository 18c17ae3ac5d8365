#include "crepe/core/interrupt.hpp"

#include <atomic>
#include <csignal>

namespace crepe {
namespace {

std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int signal) {
  g_signal = signal;
  std::signal(signal, SIG_DFL);  // a second one terminates immediately
}

bool inherited_as_ignored(int signal) {
  struct sigaction current {};
  return sigaction(signal, nullptr, &current) == 0 && current.sa_handler == SIG_IGN;
}

}  // namespace

void install_interrupt_handler() {
  if (!inherited_as_ignored(SIGINT)) std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

bool interrupt_requested() { return g_signal != 0; }

int interrupt_exit_code() { return 128 + (g_signal != 0 ? g_signal.load() : SIGINT); }

void stop_if_interrupted() {
  if (interrupt_requested()) throw Interrupted{};
}

}  // namespace crepe
