"""Lesson 04, Batch norm: backward: notebooks/04_*.ipynb.

exercises
explore
"""
