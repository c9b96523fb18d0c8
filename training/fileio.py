"""Moved to keras_regnet.fileio (tflite reads image folders with it too); this name is the same module."""

import sys

from keras_regnet import fileio

sys.modules[__name__] = fileio
