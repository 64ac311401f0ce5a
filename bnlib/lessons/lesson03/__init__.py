"""Lesson 03, Batch norm: forward and inference: notebooks/03_*.ipynb.

exercises
explore
"""
