"""Per-layer diagnostics while training, and advice when a layer looks unhealthy.

On by default (``train.diagnostics``; ``diagnostics: false`` turns them off).
Per layer (a module with its own parameters, or an activation) and epoch they
record, in ``RUN/diagnostics.jsonl`` (one JSON object per epoch):

* ``grad_norm`` / ``grad_norm_max``: the L2 norm of the layer's gradients
  (all its parameters together), mean and maximum over the measured steps;
* ``weight_norm``: the L2 norm of its parameters at the end of the epoch;
* ``update_ratio`` / ``update_ratio_max``: ``||w_after - w_before|| / ||w_before||``
  of one optimizer step, mean and maximum over the measured steps (for a
  tensor of more than 65,536 elements, estimated from an evenly strided
  sample of that many);
* ``act_mean``, ``act_std``: of the layer's output on one probe batch;
* ``dead_fraction`` (ReLU-like activations): the share of output units that
  are zero for every sample of the probe batch;
* ``grad_nonfinite``, ``weight_nonfinite``, ``act_nonfinite``: share of NaN/inf values.

Gradients and updates are measured every ``every`` optimizer steps (and on
the first); activations come from one batch per epoch (the first batch of the
validation split, else of the training split with the evaluation
transforms), run through forward hooks in eval mode under ``no_grad``. None
of it draws from the global RNG (the probe saves and restores its state),
advances the training loader or touches parameters, so a run's results are
the same with diagnostics on or off; the state goes into checkpoints, so a
resumed run writes the same rows as an uninterrupted one.

:mod:`.advice` turns the numbers into warnings that name the layer and a fix
(vanishing/exploding gradients, dead units, a loss stuck at ln(classes), a
too-large update/weight ratio, overfitting), each printed once with its epoch
and stored in the epoch's row. :mod:`.plot` draws ``diagnostics.png``.
"""
from .callback import Diagnostics
from .layers import Layer, activation_stats, tracked_layers
from .plot import write_diagnostics_plot
from .records import DIAGNOSTICS_JSONL, read_rows

__all__ = ["Diagnostics", "Layer", "activation_stats", "tracked_layers", "write_diagnostics_plot",
           "DIAGNOSTICS_JSONL", "read_rows"]
