#include "crepe/core/progress.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace crepe {
namespace {
std::atomic<bool> g_progress_enabled{true};
}

void set_progress_enabled(bool enabled) { g_progress_enabled = enabled; }
bool progress_enabled() { return g_progress_enabled; }

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      enabled_(enabled && progress_enabled()),
      terminal_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {
  if (enabled_) draw(false);
}

Progress::~Progress() { finish(); }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(int64_t steps) {
  done_ += steps;
  if (enabled_) draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

void Progress::draw(bool final) {
  const double fraction = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  const double seconds = elapsed_seconds();
  if (terminal_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(filled, '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %s %.1fs%s", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), seconds,
                 final ? "\n" : "");
    std::fflush(stderr);
    return;
  }
  const int decile = static_cast<int>(fraction * 10);
  if (decile == last_decile_ && !final) return;
  if (final && decile == last_decile_) return;
  last_decile_ = decile;
  if (done_ == 0 && !final) return;
  spdlog::info("{}: {}/{} {} ({:.0f}%, {:.1f}s)", label_, done_, total_, unit_, fraction * 100, seconds);
}

}  // namespace crepe
