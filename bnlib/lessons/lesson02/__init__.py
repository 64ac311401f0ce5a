"""Lesson 02, Exponentially smoothed averages: notebooks/02_*.ipynb.

exercises
explore
"""
