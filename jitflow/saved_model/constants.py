"""`tf.saved_model.tag_constants`, `signature_constants` and the SavedModel file names (TF's values)."""
from __future__ import annotations

import types

SAVED_MODEL_SCHEMA_VERSION = 1
SAVED_MODEL_FILENAME_PB = "saved_model.pb"
SAVED_MODEL_FILENAME_PBTXT = "saved_model.pbtxt"
VARIABLES_DIRECTORY = "variables"
VARIABLES_FILENAME = "variables"
ASSETS_DIRECTORY = "assets"
MAIN_OP_KEY = "saved_model_main_op"
LEGACY_INIT_OP_KEY = "legacy_init_op"

tag_constants = types.SimpleNamespace(SERVING="serve", TRAINING="train", EVAL="eval", GPU="gpu", TPU="tpu")

signature_constants = types.SimpleNamespace(
    DEFAULT_SERVING_SIGNATURE_DEF_KEY="serving_default",
    CLASSIFY_INPUTS="inputs", CLASSIFY_METHOD_NAME="tensorflow/serving/classify",
    CLASSIFY_OUTPUT_CLASSES="classes", CLASSIFY_OUTPUT_SCORES="scores",
    PREDICT_INPUTS="inputs", PREDICT_METHOD_NAME="tensorflow/serving/predict", PREDICT_OUTPUTS="outputs",
    REGRESS_INPUTS="inputs", REGRESS_METHOD_NAME="tensorflow/serving/regress", REGRESS_OUTPUTS="outputs")
