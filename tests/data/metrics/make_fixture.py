"""Records tf.compat.v1.metrics over two batches: update results, final values and local variable names.

Run once with TensorFlow installed: TF_CPP_MIN_LOG_LEVEL=3 python make_fixture.py  (writes tf_metrics.json)
"""
import json
import os

import numpy as np
import tensorflow.compat.v1 as tf

rng = np.random.RandomState(0)
LABELS = [rng.randint(0, 2, 16).astype(np.int64), rng.randint(0, 2, 16).astype(np.int64)]
SCORES = [rng.rand(16).astype(np.float32), rng.rand(16).astype(np.float32)]
WEIGHTS = [rng.rand(16).astype(np.float32), rng.rand(16).astype(np.float32)]
CLASSES = [rng.randint(0, 3, 16).astype(np.int32), rng.randint(0, 3, 16).astype(np.int32)]
PRED_CLASSES = [rng.randint(0, 3, 16).astype(np.int32), rng.randint(0, 3, 16).astype(np.int32)]


def build(tf, lab, score, w, cls, pcls):  # also builds jitflow's metrics in tests/test_metrics.py
    pred = tf.cast(score > 0.5, tf.int64)
    m = tf.metrics
    return {
        "accuracy": m.accuracy(lab, pred),
        "accuracy_w": m.accuracy(lab, pred, weights=w),
        "mean": m.mean(score),
        "mean_w": m.mean(score, weights=w),
        "precision": m.precision(lab, pred),
        "recall_w": m.recall(lab, pred, weights=w),
        "auc": m.auc(lab, score),
        "auc_pr": m.auc(lab, score, curve="PR", num_thresholds=50),
        "auc_w_minoring": m.auc(lab, score, weights=w, summation_method="minoring"),
        "mse": m.mean_squared_error(tf.cast(lab, tf.float32), score),
        "mae_w": m.mean_absolute_error(tf.cast(lab, tf.float32), score, weights=w),
        "rmse": m.root_mean_squared_error(tf.cast(lab, tf.float32), score),
        "tp": m.true_positives(lab, pred),
        "fp_w": m.false_positives(lab, pred, weights=w),
        "fn": m.false_negatives(lab, pred),
        "tn": m.true_negatives(lab, pred),
        "mean_iou": m.mean_iou(cls, pcls, 3),
        "mean_iou_w": m.mean_iou(cls, pcls, 3, weights=w),
    }


def main() -> None:
    tf.disable_v2_behavior()
    phs = [tf.placeholder(tf.int64, [16]), tf.placeholder(tf.float32, [16]), tf.placeholder(tf.float32, [16]),
           tf.placeholder(tf.int32, [16]), tf.placeholder(tf.int32, [16])]
    metrics = build(tf, *phs)
    out = {"local_variables": [v.name for v in tf.local_variables()],
           "metric_variables": [v.name for v in tf.get_collection(tf.GraphKeys.METRIC_VARIABLES)],
           "global_variables": [v.name for v in tf.global_variables()], "updates": [], "values": None}
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        for b in range(2):
            feed = dict(zip(phs, [LABELS[b], SCORES[b], WEIGHTS[b], CLASSES[b], PRED_CLASSES[b]]))
            up = sess.run({k: v[1] for k, v in metrics.items()}, feed)
            out["updates"].append({k: np.asarray(v).tolist() for k, v in up.items()})
        out["values"] = {k: np.asarray(v).tolist() for k, v in sess.run({k: v[0] for k, v in metrics.items()}).items()}
    out["inputs"] = {"labels": [x.tolist() for x in LABELS], "scores": [x.tolist() for x in SCORES],
                     "weights": [x.tolist() for x in WEIGHTS], "classes": [x.tolist() for x in CLASSES],
                     "pred_classes": [x.tolist() for x in PRED_CLASSES]}
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_metrics.json"), "w") as f:
        json.dump(out, f, indent=0)


if __name__ == "__main__":
    main()
