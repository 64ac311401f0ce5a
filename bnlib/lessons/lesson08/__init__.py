"""Lesson 08, Noise, batch size and pitfalls: notebooks/08_*.ipynb.

exercises
explore
"""
