"""`tensorflow.python.tools`: checkpoint inspection."""
