"""Lesson 01, Normalization: notebooks/01_*.ipynb.

exercises
explore
"""
