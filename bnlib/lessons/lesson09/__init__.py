"""Lesson 09, batch norm in convolutional networks.

explore    the experiments, figures and explorers (pure NumPy, no TensorFlow)
keras_conv the same convolution + batch norm in Keras, and the folded model (imports TensorFlow)
exercises  the exercise checkers
diagram    the N/C/HW cube diagram of images/norm-axes.png
"""
