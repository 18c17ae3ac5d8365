#pragma once
// Honest progress for long work: a bar redrawn in place when stderr is a terminal, otherwise a
// plain log line at every 10% (so CI logs and pipes stay readable). Never writes to stdout.
#include <chrono>
#include <cstdint>
#include <string>

namespace crepe {

class Progress {
 public:
  // `unit` names what is counted ("blocks", "windows").
  Progress(std::string label, int64_t total, std::string unit, bool enabled = true);
  ~Progress();
  void advance(int64_t steps = 1);
  // Ends the bar (idempotent).
  void finish();
  double elapsed_seconds() const;

 private:
  void draw(bool final);

  std::string label_;
  std::string unit_;
  int64_t total_;
  int64_t done_ = 0;
  int last_decile_ = -1;
  bool enabled_;
  bool terminal_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
};

// Whether progress bars are wanted at all (set once by the CLI: --quiet turns them off).
void set_progress_enabled(bool enabled);
bool progress_enabled();

}  // namespace crepe
