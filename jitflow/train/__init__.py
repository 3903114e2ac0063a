"""`tf.train`: optimizers, Saver, checkpoints, MonitoredTrainingSession (re-exports only)."""
