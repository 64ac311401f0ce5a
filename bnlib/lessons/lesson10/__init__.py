"""Lesson 10, Batch norm when training outgrows one device: notebooks/10_*.ipynb.

experiments  the runs on the real engine, Keras under tf.distribute.MirroredStrategy
             (imports TensorFlow): training over seeds, stored statistics, Keras's
             float32 synchronized variance, all-reduce counts and timing
explore      the NumPy side (float32 cancellation, ghost batch norm), the figures and
             the explorer with its precomputed table (runs.npz)
exercises    the exercise checkers
multiworker  two MultiWorkerMirroredStrategy workers in a private network namespace
"""
