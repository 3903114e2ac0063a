"""Records 3 training steps of Adadelta, Ftrl (plain, l1/l2, shrinkage, power -0.7), ProximalGradientDescent,
ProximalAdagrad and an ExponentialMovingAverage (num_updates, zero-debiased tensor) with TensorFlow.
`optimizers(tf)`, `model(tf)` and `ema_graph(tf)` also build jitflow's in tests/train/test_more_optimizers_ema.py.

Run once with TensorFlow installed: TF_CPP_MIN_LOG_LEVEL=3 python make_fixture.py  (writes tf_values.json)
"""
import json
import os

import numpy as np
import tensorflow.compat.v1 as tf

X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.3, -2.0]], np.float32)
Y = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0], [-1.0, 1.0, 3.0]], np.float32)
W0 = np.array([[0.1, -0.2, 0.3], [0.05, 0.4, -0.5]], np.float32)


def optimizers(tf):
    t = tf.train
    return {
        "adadelta": lambda: t.AdadeltaOptimizer(1.0, rho=0.9, epsilon=1e-6),
        "ftrl": lambda: t.FtrlOptimizer(0.1),
        "ftrl_l1l2": lambda: t.FtrlOptimizer(0.2, l1_regularization_strength=0.05, l2_regularization_strength=0.1),
        "ftrl_shrink_power": lambda: t.FtrlOptimizer(0.2, learning_rate_power=-0.7, l1_regularization_strength=0.01,
                                                     l2_shrinkage_regularization_strength=0.1),
        "proximal_gd": lambda: t.ProximalGradientDescentOptimizer(0.05, l1_regularization_strength=0.1,
                                                                  l2_regularization_strength=0.2),
        "proximal_adagrad": lambda: t.ProximalAdagradOptimizer(0.1, l1_regularization_strength=0.05,
                                                               l2_regularization_strength=0.1),
    }


def model(tf):
    w = tf.Variable(W0, name="w")
    b = tf.Variable(tf.zeros([3]), name="b")
    loss = tf.reduce_sum(tf.square(tf.matmul(tf.constant(X), w) + b - Y))
    return w, b, loss


def ema_graph(tf):
    w, b, loss = model(tf)
    step = tf.train.get_or_create_global_step()
    train = tf.train.GradientDescentOptimizer(0.05).minimize(loss, global_step=step)
    ema = tf.train.ExponentialMovingAverage(0.9, num_updates=step, zero_debias=True)
    with tf.control_dependencies([train]):
        update = ema.apply([w, b, loss])
    return (w, b, loss), ema, update


def run_optimizer(make):
    tf.reset_default_graph()
    w, b, loss = model(tf)
    train = make().minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        losses = [float(sess.run([loss, train])[0]) for _ in range(3)]
        values = {v.op.name: sess.run(v).tolist() for v in tf.global_variables()}
    return {"losses": losses, "variables": values}


def run_ema():
    tf.reset_default_graph()
    (w, b, loss), ema, update = ema_graph(tf)
    out = {"names": [v.op.name for v in tf.global_variables()],
           "average_name": ema.average_name(w),
           "moving_average_variables": [v.op.name for v in tf.moving_average_variables()],
           "to_restore": {k: v.op.name for k, v in ema.variables_to_restore().items()}, "steps": []}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(3):
            sess.run(update)
            out["steps"].append({n: sess.run(ema.average(v)).tolist() for n, v in (("w", w), ("b", b), ("loss", loss))})
    return out


def main() -> None:
    tf.disable_v2_behavior()
    out = {name: run_optimizer(make) for name, make in optimizers(tf).items()}
    out["ema"] = run_ema()
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_values.json"), "w") as f:
        json.dump(out, f, indent=0)


if __name__ == "__main__":
    main()
