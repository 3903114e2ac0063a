"""Modules under the paths TF 1.x programs import them from (`tensorflow.python.tools...`)."""
