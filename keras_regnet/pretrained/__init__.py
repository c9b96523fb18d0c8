"""Pretrained weights, one module per job, all reading the presets table (keras_regnet.presets):
`tags` (timm's tagged names -> rows), `download` (into the Keras cache), `state_dict` (reading
reference checkpoints), `convert` (state dict -> Keras arrays by layer name), `cache` (download and
convert once, reuse), `assign` (arrays -> the model it is handed), `load` (the one loader behind
every `weights=`) and `eval_crop` (a weight's eval transform). Importing this package imports none
of them; none of them builds a model (the file-writing converter is keras_regnet.checkpoint_converter).
"""
