"""Pretrained weights, one module per job: `presets` (the table: one row per weight), `tags` (timm's
tagged names -> rows), `download` (into the Keras cache), `state_dict` (reading reference checkpoints),
`convert` (state dict -> Keras arrays by layer name), `cache` (download + convert once, reuse),
`assign` (arrays -> the model it is handed), `load` (the one loader behind every `weights=`),
`keras_file` (a checkpoint -> a `.weights.h5` / `.keras` file) and `eval_crop` (each weight's eval
transform). Importing this package imports none of them.
"""
