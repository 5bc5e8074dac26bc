// When the periodic parts of a training run happen: one rule for Trainer::Run
// and GanTrainer::Run, so "every N steps / at each epoch's end / at the last
// step" is written once.
#ifndef NNLAB_CORE_TRAIN_RUN_H_
#define NNLAB_CORE_TRAIN_RUN_H_

#include <cstdint>

namespace nnlab {

// A cadence: an action (event, evaluation, sample, checkpoint) is due after
// step `step` (1-based) if any of its conditions holds. The default is never.
struct RunCadence {
  int64_t every_steps = 0;    // Every N steps; 0 = not by count.
  bool at_epoch_end = false;  // After the last step of each epoch.
  bool at_last_step = false;  // After the run's last step.

  // Every N steps, or at each epoch's end when N is 0 (the server's
  // checkpoint_every_steps and eval_every_steps rules).
  static RunCadence EveryOrEpochEnd(int64_t every_steps) {
    RunCadence c;
    c.every_steps = every_steps;
    c.at_epoch_end = every_steps == 0;
    return c;
  }
  static RunCadence Every(int64_t every_steps) {
    RunCadence c;
    c.every_steps = every_steps;
    return c;
  }

  bool Due(int64_t step, bool epoch_end, bool last_step) const {
    return (every_steps > 0 && step % every_steps == 0) ||
           (at_epoch_end && epoch_end) || (at_last_step && last_step);
  }
};

}  // namespace nnlab

#endif  // NNLAB_CORE_TRAIN_RUN_H_
