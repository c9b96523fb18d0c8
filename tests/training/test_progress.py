"""What the user watches: the per-epoch progress line."""

from __future__ import annotations

import re


def test_progress_line_shows_the_epoch_mean_loss_not_the_last_batch(tmp_path, capsys):
    """verbose=2 prints one line per epoch: its loss must be the epoch's mean, as Keras' fit shows."""
    from training.core.config import TrainConfig
    from training.data import make_source
    from training.engines.tensorflow.assembly import make_trainer
    from training.run import prepare
    from training.engines.tensorflow.devices import make_runtime

    cfg, spec, _ = prepare(TrainConfig(model="regnetx_digits", image_size=8, epochs=1, batch_size=128,
                                       model_dir=str(tmp_path / "run"), verbose=2))  # 11 steps
    trainer = make_trainer(cfg, make_runtime("one_device", "off", "off"), make_source(cfg), spec)
    capsys.readouterr()
    trainer.fit()
    line = next(l for l in capsys.readouterr().out.splitlines() if "loss:" in l and "img/s" in l)
    shown = float(re.search(r"loss: ([0-9.e+-]+)", line).group(1))
    losses = trainer.step_losses
    assert abs(shown - sum(losses) / len(losses)) < 1e-3
    assert abs(losses[-1] - sum(losses) / len(losses)) > 1e-3  # the two differ, so the check bites
