"""Lesson 05, Batch norm inside a network: notebooks/05_*.ipynb.

exercises
explore
"""
