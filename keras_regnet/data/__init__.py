"""Data readers that training and tflite both use: the embedded digits split and image folders."""
