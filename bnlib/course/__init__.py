"""The course floor's shared machinery: one home each.

checks       the check framework: assert_close / assert_below / assert_true, check_exercise
references   plain-NumPy references and cases the exercise checkers share
widgets      the slider-explorer machinery (Scene: a figure redrawn in place; LiveTicks)
plots        plotting helpers (take arrays and an optional ax, return the figure)
seeds        claims about training over several seeds (LESSON_SEEDS, TEST_SEEDS)
timing       best-of-n timing for the lessons' speed comparisons, interleaved
tables       explorer tables trained ahead of time, saved with their settings
environment  lesson 00's check of the installed versions
diagrams     draws the diagrams in images/ (python -m bnlib.course.diagrams images)
"""
