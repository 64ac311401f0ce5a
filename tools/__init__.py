"""The course's build tools, run from the repository's root as ``python -m tools.NAME``.

- ``build_notebooks``: rebuild and execute the lessons from their scripts (``make notebooks``);
- ``course_lab``: JupyterLab on the learner's copies or for authors (``make lab``, ``make author``);
- ``portability``: strict nbval under another CPU's numerics (``make test``, ``make test-portability``);
- ``build_site``: the static course site (``make site``).

They are not part of bnlib: a learner never imports them. Tests import them as ``tools.NAME``
(pytest puts the repository's root on the path: ``pythonpath`` in pyproject.toml).
"""
