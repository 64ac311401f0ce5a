"""Lesson 06, Covariate shift: notebooks/06_*.ipynb.

exercises
experiments
explore
"""
