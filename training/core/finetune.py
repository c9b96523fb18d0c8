"""Fine-tuning from pretrained weights: the --freeze rule, the recipe defaults, loading the backbone.

Recipe (the defaults `--weights` switches to; every one is overridable by its flag), after the
BiT-HyperRule of Kolesnikov et al., "Big Transfer (BiT): General Visual Representation Learning"
(ECCV 2020), section 3.3: SGD with momentum 0.9, initial LR 0.003 and a short schedule (BiT: 500
steps for datasets under 20k images, decayed by 10x at 30/60/90%). Ours: LR 0.003 at any batch
size (BiT fixes it; it is not rescaled), FINETUNE_EPOCHS epochs with a linear warmup over the
first tenth, and the cosine decay of the from-scratch recipe in place of BiT's step decays.

--freeze: `none`, `backbone` (everything but the classifier), or a comma-separated list of
`stem` and stages (`s1`..`sN` or `1`..`N`). Frozen layers, BatchNorm included, have
`trainable=False`, so Keras runs them in inference mode (moving statistics used and not updated:
Keras' transfer-learning rule) and the optimizer never sees their weights.
"""

from __future__ import annotations

from typing import Any, Callable

from keras_regnet.freezing import freeze as freeze_layers
from keras_regnet.freezing import frozen_layers, parse_freeze  # noqa: F401  (the --freeze rule, used by config)
from keras_regnet.layer_records import CLASSIFIER

FINETUNE_LR = 0.003
FINETUNE_EPOCHS = 10
FINETUNE_WARMUP_FRACTION = 0.1


def finetune_lr(batch_size: int) -> float:
    """BiT's initial LR, 0.003, whatever the batch size (`batch_size` is accepted for symmetry
    with the from-scratch rule, recipe.recipe_lr)."""
    del batch_size
    return FINETUNE_LR


def apply_freeze(model: Any, freeze: str, num_stages: int | None = None) -> list[str]:
    """--freeze through the library's `keras_regnet.freeze` (BN then runs in inference mode); returns the layers."""
    return freeze_layers(model, freeze, num_stages=num_stages)


def load_pretrained(model: Any, spec: Any, weights: str, log: Callable[[str], None] = print) -> list[str]:
    """Load `weights` into `model`; the classifier is re-initialised (and logged) when its class
    count differs from the source's. Returns the layers left at their initial values."""
    from keras_regnet.pretrained.load import load_into, resolve_weights

    path = resolve_weights(weights, label="--weights", spec=spec)
    skipped = load_into(model, path, spec, new_head=True)
    if skipped:
        units = model.get_layer(CLASSIFIER).weights[0].shape[-1]
        log(f"Loaded --weights={weights} ({path}) into the backbone; re-initialised the classifier "
            f"'{CLASSIFIER}' for {units} classes (the source's head does not fit)")
    else:
        log(f"Loaded --weights={weights} ({path}) into every layer, the classifier included")
    return skipped
