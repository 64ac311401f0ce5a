"""Each lesson's own code (experiments, explorers, exercise checkers), one subpackage per lesson."""
