"""Lesson 00, Start here: notebooks/00_*.ipynb.

exercises
explore
"""
