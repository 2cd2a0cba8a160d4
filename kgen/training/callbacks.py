"""Keras callbacks of the harness."""

import math

import keras


class NaNGuard(keras.callbacks.Callback):
    """Stops training when any logged value (loss, kl, d_loss, ...) is NaN or Inf.

    Keras' `TerminateOnNaN` watches only `loss`; this watches every key.
    """

    def __init__(self):
        super().__init__()
        self.bad = None

    def _check(self, logs, where):
        for key, value in (logs or {}).items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(value):
                self.bad = f"{key} = {value} {where}"
                self.model.stop_training = True
                return

    def on_train_batch_end(self, batch, logs=None):
        if self.bad is None:
            self._check(logs, f"at step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        if self.bad is None:
            self._check(logs, "at the end of the epoch")


class ProgressBar(keras.callbacks.Callback):
    """One progress bar per epoch, labelled `epoch k/E`."""

    def __init__(self, epoch, epochs, steps):
        super().__init__()
        self.label = f"epoch {epoch}/{epochs}"
        self.steps = steps

    def on_epoch_begin(self, epoch, logs=None):
        print(self.label, flush=True)
        self.bar = keras.utils.Progbar(self.steps, unit_name="step")

    def on_train_batch_end(self, batch, logs=None):
        values = [(k, float(v)) for k, v in (logs or {}).items()]
        self.bar.stateful_metrics.update(k for k, _ in values)  # logs are running means already
        # With steps_per_execution = S Keras reports the last step of each call, so an epoch whose
        # steps are not a multiple of S ends on a step past its last one (504 of 500 at S = 8).
        self.bar.update(min(batch + 1, self.steps), values=values, finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.update(self.steps, values=[(k, float(v)) for k, v in (logs or {}).items()], finalize=True)
