import os
import tensorflow as tf

global_step = tf.train.get_or_create_global_step()
w = tf.Variable(1.0, name="w")
train_op = tf.group(tf.assign_add(global_step, 1), tf.assign_add(w, 1.0))
for restart in range(3):
    scaffold = tf.train.Scaffold(saver=tf.train.Saver(max_to_keep=2))
    with tf.train.MonitoredTrainingSession(checkpoint_dir="ckpt", scaffold=scaffold,
                                           save_checkpoint_steps=2, save_summaries_steps=None,
                                           save_summaries_secs=None, log_step_count_steps=None) as sess:
        for _ in range(3):
            sess.run(train_op)
    print(restart, sorted(f for f in os.listdir("ckpt") if f.startswith("model.ckpt") and f.endswith(".index")))
    state = tf.train.get_checkpoint_state("ckpt")
    print(os.path.basename(state.model_checkpoint_path),
          [os.path.basename(p) for p in state.all_model_checkpoint_paths])
