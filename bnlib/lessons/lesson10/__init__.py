"""Lesson 10, Batch norm when training outgrows one device: notebooks/10_*.ipynb.

explore     the experiments on tf.distribute (per-replica and synchronized batch norm,
            training over seeds, all-reduce counts and timing), ghost batch norm, the
            figures and the explorer with its precomputed table (runs.npz)
exercises   the exercise checkers
multiworker two MultiWorkerMirroredStrategy workers in a private network namespace
"""
