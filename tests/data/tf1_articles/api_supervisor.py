import glob
import os
import tensorflow as tf

global_step = tf.train.get_or_create_global_step()
w = tf.Variable(1.0, name="w")
loss = tf.square(w - 3.0)
tf.summary.scalar("loss", loss)
train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=global_step)
sv = tf.train.Supervisor(logdir="sv_log", save_model_secs=0, save_summaries_secs=0)
print(type(sv.saver).__name__, sv.global_step.op.name, sv.summary_op is not None, sv.save_path)
try:
    tf.constant(1.0)
except RuntimeError:
    print("graph finalized")
with sv.managed_session() as sess:
    step = 0
    while not sv.should_stop():
        _, step = sess.run([train_op, global_step])
        if step >= 5:
            sv.request_stop()
    sv.summary_computed(sess, sess.run(sv.summary_op))
    sv.saver.save(sess, sv.save_path, global_step=global_step)
    print(step, round(float(sess.run(w)), 5))
print(sorted(os.path.basename(p) for p in glob.glob("sv_log/model.ckpt*")))
events = []
for path in sorted(glob.glob("sv_log/events.out.tfevents.*")):
    for e in tf.train.summary_iterator(path):
        if e.HasField("session_log"):
            events.append(("session_log", e.session_log.status))
        for v in e.summary.value:
            events.append((e.step, v.tag))
print(sorted(set(str(e) for e in events)))
with sv.managed_session() as sess:
    print(sess.run(global_step), round(float(sess.run(w)), 5), sv.should_stop())
    raise tf.errors.OutOfRangeError(None, None, "input exhausted")
print("out of range ends training")
