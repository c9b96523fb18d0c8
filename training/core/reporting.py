"""What users look at: progress bar with images/s and TensorBoard scalars.

TensorFlow writes the TensorBoard event files; it is imported only when a writer is made (the chief of a
run), so the core loop imports without it.
"""

from __future__ import annotations

import time
from typing import Any

from keras_regnet import fileio


def _scalar_metadata() -> Any:
    """Summary metadata of TensorBoard's scalars plugin, so logs need no tensorboard package to write."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


class Scalars:
    """TensorBoard writers for the train and eval scalars (no-ops on non-chief workers)."""

    def __init__(self, log_dir: str | None) -> None:
        self._writers = {}
        if log_dir:
            import tensorflow as tf

            self._metadata = _scalar_metadata()
            for name in ("train", "eval"):
                self._writers[name] = tf.summary.create_file_writer(fileio.join(log_dir, name))

    def write(self, split: str, step: int, values: dict[str, float]) -> None:
        writer = self._writers.get(split)
        if writer is None:
            return
        import tensorflow as tf

        with writer.as_default():
            for key, value in values.items():
                tf.summary.write(key, tf.constant(float(value), tf.float32), step=step, metadata=self._metadata)

    def flush(self) -> None:
        """Write the buffered scalars to disk: once per epoch and at exit (a flush per write stalls the loop)."""
        for writer in self._writers.values():
            writer.flush()


class Progress:
    """A Keras progress bar over one epoch's steps, showing loss, top-1, LR and images/s."""

    def __init__(self, epoch: int, epochs: int, steps: int, start: int, verbose: int) -> None:
        import keras

        self.verbose = verbose
        self.bar = None
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}" + (f" (resuming at step {start}/{steps})" if start else ""),
                  flush=True)
            self.bar = keras.utils.Progbar(steps, stateful_metrics=["loss", "top1", "lr", "img/s"],
                                           verbose=verbose)
            if start:
                self.bar.update(start)
        self.images = 0
        self.t0 = time.perf_counter()
        self._first = True  # the first step (tracing, pipeline start) is left out of images/s

    def images_per_second(self) -> float:
        elapsed = time.perf_counter() - self.t0
        return self.images / elapsed if elapsed > 0 else 0.0

    def update(self, step_in_epoch: int, images: int, values: dict[str, float]) -> None:
        if self._first:
            self._first = False
            self.t0 = time.perf_counter()
        else:
            self.images += images
        if self.bar is not None:
            shown = {**values, "img/s": self.images_per_second()}
            self.bar.update(step_in_epoch, values=list(shown.items()))
