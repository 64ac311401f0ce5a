"""Each lesson's own code, in ``bnlib.lessons.lessonNN`` for notebook NN.

A lesson package holds ``explore`` (its experiments, figures and slider explorers)
and ``exercises`` (its exercise checkers). Code flows down only: a lesson uses the
core (``bnlib``) and the course machinery, never another lesson.
"""
