"""model.keras from a run is a classifier: a softmax head over the trained logits, so keras_regnet's
`decode_predictions` (keras.applications') gives probabilities, while training keeps its logits."""

from __future__ import annotations

import numpy as np

import keras_regnet
from keras_regnet.imagenet_utils import decode_predictions
from training.core.classifier_file import save_classifier


def test_the_saved_model_returns_the_softmax_of_the_training_logits(tmp_path):
    import keras

    model = keras_regnet.RegNet(depth=2, w0=8, wa=8.0, wm=2.0, group_width=8, input_shape=(32, 32, 3),
                                classes=1000, classifier_activation=None, name="tiny")
    head = model.get_layer("predictions")
    head.set_weights([np.random.default_rng(0).normal(0, 0.5, w.shape) for w in head.get_weights()])
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    logits = model(x, training=False).numpy()
    path = save_classifier(model, str(tmp_path))
    assert head.activation is keras.activations.linear  # the training model still gives logits
    np.testing.assert_allclose(model(x, training=False).numpy(), logits)
    probabilities = keras.saving.load_model(path)(x, training=False).numpy()
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-7)
    top = decode_predictions(probabilities, top=3)
    np.testing.assert_allclose([score for _, _, score in top[0]], sorted(expected[0], reverse=True)[:3], rtol=1e-5)
    assert 0.0 < top[0][0][2] <= 1.0 and logits[0].max() != top[0][0][2]
