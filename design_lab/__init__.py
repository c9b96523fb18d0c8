"""The design-space lab: sample populations, train them briefly, time them, and analyze them (sweep,
analyze and latency CLIs) on top of `keras_regnet.design_space`, the trainer and the exporters."""
