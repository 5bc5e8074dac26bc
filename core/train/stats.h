// Training statistics, computed by the core during a step and handed out as
// plain structs: the live view of how each layer learns.
#ifndef NNLAB_CORE_TRAIN_STATS_H_
#define NNLAB_CORE_TRAIN_STATS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace nnlab {

// One parameterised layer (dense, conv, batch norm, recurrent...).
struct LayerStats {
  std::string name;             // Layer name, e.g. "dense0".
  std::string kind;             // Layer kind, e.g. "dense".
  double grad_bias_norm = 0;    // ||dE/db||: the lecture's learning speed
                                // ||delta^l|| (mean cost over the batch).
  double grad_weight_norm = 0;  // ||dE/dW||.
  double weight_norm = 0;       // ||W||.
  double update_ratio = 0;      // ||W_after - W_before|| / ||W_before||.
  // Output of the activation that follows the layer (or of the layer itself
  // if no activation follows): mean, standard deviation, and the fraction of
  // saturated (sigmoid/tanh) or dead (ReLU) units; -1 if not applicable.
  double activation_mean = 0;
  double activation_std = 0;
  double saturated_fraction = -1;
  // Recurrent layers: ||dE/dh_t|| for t = 0..T-1 from this step's backward
  // pass (RecurrentLayer::timestep_grad_norms); empty for other layers.
  std::vector<double> timestep_grad_norms;
};

struct StepStats {
  int64_t step = 0;  // 1-based count of optimizer steps taken.
  int epoch = 0;     // 0-based epoch of this step.
  double loss = 0;
  double accuracy = -1;  // Batch accuracy in [0, 1]; -1 for non-classifiers.
  double learning_rate = 0;
  double grad_norm = 0;  // Global gradient norm before clipping.
  // Data-parallel runs: seconds this step spent in the gradient allreduce
  // (0 in one process).
  double comm_seconds = 0;
  std::vector<LayerStats> layers;  // Empty unless statistics were requested.
};

}  // namespace nnlab

#endif  // NNLAB_CORE_TRAIN_STATS_H_
