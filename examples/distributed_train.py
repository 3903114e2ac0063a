"""Between-graph replicated training, TF1's documented ps/worker trainer, unchanged but for the import.

Start one process per task (each finds the others through Ray: RAY_ADDRESS, or a local Ray instance
when every address is on localhost):

    python examples/distributed_train.py --job_name=ps --task_index=0 &
    python examples/distributed_train.py --job_name=worker --task_index=0 &
    python examples/distributed_train.py --job_name=worker --task_index=1

The MLP (784→512→10 by default) learns labels that a fixed random linear map assigns to random
inputs. Each worker prints its own step count and loss; the chief (worker 0) initializes the
variables on the ps task and writes checkpoints to --train_dir.
"""
import argparse
import sys

import numpy as np

import jitflow as tf

FLAGS = None


def build_model(num_inputs, num_hidden, num_classes, learning_rate):
    x = tf.placeholder(tf.float32, [None, num_inputs], name="x")
    labels = tf.placeholder(tf.int64, [None], name="labels")
    w1 = tf.Variable(tf.truncated_normal([num_inputs, num_hidden], stddev=0.05, seed=1), name="w1")
    b1 = tf.Variable(tf.zeros([num_hidden]), name="b1")
    w2 = tf.Variable(tf.truncated_normal([num_hidden, num_classes], stddev=0.05, seed=2), name="w2")
    b2 = tf.Variable(tf.zeros([num_classes]), name="b2")
    hidden = tf.nn.relu(tf.matmul(x, w1) + b1)
    logits = tf.matmul(hidden, w2) + b2
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits),
                          name="loss")
    global_step = tf.train.get_or_create_global_step()
    train_op = tf.train.GradientDescentOptimizer(learning_rate).minimize(loss, global_step=global_step)
    return x, labels, loss, train_op, global_step


def batches(task_index, batch_size, num_inputs, num_classes):
    """Endless batches of this worker's share of the data: inputs and the labels a fixed map gives them."""
    teacher = np.random.RandomState(1234).randn(num_inputs, num_classes).astype(np.float32)
    rng = np.random.RandomState(100 + task_index)
    while True:
        xb = rng.randn(batch_size, num_inputs).astype(np.float32)
        yield xb, np.argmax(xb @ teacher, axis=1).astype(np.int64)


def main(_):
    cluster = tf.train.ClusterSpec({"ps": FLAGS.ps_hosts.split(","), "worker": FLAGS.worker_hosts.split(",")})
    server = tf.train.Server(cluster, job_name=FLAGS.job_name, task_index=FLAGS.task_index)
    if FLAGS.job_name == "ps":
        server.join()
        return
    with tf.device(tf.train.replica_device_setter(worker_device=f"/job:worker/task:{FLAGS.task_index}",
                                                  cluster=cluster)):
        x, labels, loss, train_op, global_step = build_model(FLAGS.num_inputs, FLAGS.hidden, 10, FLAGS.learning_rate)
    hooks = [tf.train.StopAtStepHook(last_step=FLAGS.last_step)]
    data = batches(FLAGS.task_index, FLAGS.batch_size, FLAGS.num_inputs, 10)
    local_steps, first_loss, last_loss, step = 0, None, None, 0
    with tf.train.MonitoredTrainingSession(master=server.target, is_chief=(FLAGS.task_index == 0),
                                           checkpoint_dir=FLAGS.train_dir, save_checkpoint_steps=FLAGS.save_steps,
                                           hooks=hooks, log_step_count_steps=0) as mon_sess:
        while not mon_sess.should_stop():
            xb, yb = next(data)
            last_loss, _, step = mon_sess.run([loss, train_op, global_step], feed_dict={x: xb, labels: yb})
            first_loss = last_loss if first_loss is None else first_loss
            local_steps += 1
            if FLAGS.log_every and local_steps % FLAGS.log_every == 0:
                print(f"worker {FLAGS.task_index}: step {step} loss {last_loss:.4f}", flush=True)
            if FLAGS.step_delay:
                import time

                time.sleep(FLAGS.step_delay)
    print(f"worker {FLAGS.task_index}: local_steps={local_steps} global_step={step} first_loss={first_loss:.4f} "
          f"last_loss={last_loss:.4f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ps_hosts", default="localhost:2222")
    parser.add_argument("--worker_hosts", default="localhost:2223,localhost:2224")
    parser.add_argument("--job_name", choices=["ps", "worker"], required=True)
    parser.add_argument("--task_index", type=int, default=0)
    parser.add_argument("--train_dir", default="/tmp/jitflow_distributed_train")
    parser.add_argument("--last_step", type=int, default=2000)
    parser.add_argument("--save_steps", type=int, default=500)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_inputs", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--log_every", type=int, default=100, help="print the loss every this many local steps")
    parser.add_argument("--step_delay", type=float, default=0.0, help="seconds to sleep after each step")
    FLAGS, unparsed = parser.parse_known_args()
    tf.app.run(main=main, argv=[sys.argv[0]] + unparsed)
