"""Lesson 07, Batch norm in TensorFlow and Keras: notebooks/07_*.ipynb.

exercises
explore
"""
