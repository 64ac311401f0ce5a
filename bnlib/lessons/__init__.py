"""Each lesson's own code, in ``bnlib.lessons.lessonNN`` for notebook NN.

A lesson package holds ``explore`` (its experiments, figures and slider explorers),
``exercises`` (its exercise checkers) and, where a lesson needs more room, further
modules (lesson 06: ``experiments``). Code flows down only: a lesson uses the core
(``bnlib``) and the course machinery (``bnlib.course``), never another lesson.
"""
