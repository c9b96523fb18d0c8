"""Design spaces of the paper (AnyNetX_A..E, RegNetX/Y), population sampling and statistics.

Pure Python + numpy (no TensorFlow); plots live in `keras_regnet.design_space.plots`, which loads
matplotlib only when called.
"""

from keras_regnet.design_space.fast_complexity import StageArrays, batch_complexity
from keras_regnet.design_space.population import model_parameters, to_columns
from keras_regnet.design_space.sampler import (
    PAPER_FLOPS, SAMPLER_VERSION, Sample, sample, scaled_flops_range,
)
from keras_regnet.design_space.spaces import SPACES, AnyNetSpace, RegNetSpace, get_space
from keras_regnet.design_space.stats import (
    BootstrapRange, Summary, binned_trend, bootstrap_best, complexity_weights, edf, edf_area, summarize,
)

__all__ = [
    "AnyNetSpace", "BootstrapRange", "PAPER_FLOPS", "RegNetSpace", "SAMPLER_VERSION", "SPACES", "Sample",
    "StageArrays", "Summary", "batch_complexity", "binned_trend", "bootstrap_best", "complexity_weights", "edf",
    "edf_area", "get_space", "model_parameters", "sample", "scaled_flops_range", "summarize",
    "to_columns",
]
