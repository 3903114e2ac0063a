import glob
import tensorflow as tf

W1 = tf.Variable(tf.ones([2, 2]), name="W1")
h = tf.summary.histogram(W1.name, W1)
s = tf.summary.scalar("loss:0", tf.reduce_sum(W1))
print(h.op.name, s.op.name)
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    writer = tf.summary.FileWriter("plain")
    writer.add_summary(sess.run(tf.summary.merge_all()), 4)
    writer.close()
for e in tf.train.summary_iterator(glob.glob("plain/events.out.tfevents.*")[0]):
    print(e.step, sorted(v.tag for v in e.summary.value), [round(v.simple_value, 3) for v in e.summary.value])

tf.reset_default_graph()
global_step = tf.train.get_or_create_global_step()
x = tf.Variable(3.0, name="x")
loss = tf.square(x)
tf.summary.scalar("loss", loss)
train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=global_step)
with tf.train.MonitoredTrainingSession(checkpoint_dir="logs", save_summaries_steps=2,
                                       log_step_count_steps=2, save_checkpoint_secs=None) as sess:
    for _ in range(5):
        sess.run(train_op)
events = []
for path in sorted(glob.glob("logs/events.out.tfevents.*")):
    for e in tf.train.summary_iterator(path):
        if e.HasField("session_log"):
            events.append((e.step, "session_log", e.session_log.status))
        for v in e.summary.value:
            events.append((e.step, v.tag))
for ev in events:
    print(ev)
