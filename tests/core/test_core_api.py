"""The core's declared public API: ``__all__`` in every core module, and nothing undeclared."""
import importlib
import inspect

import pytest

CORE = ["_validate", "_stats", "normalize", "ema", "batchnorm", "batchnorm_fast", "layernorm",
        "gradcheck", "nn", "conv", "cnn", "distributed"]


@pytest.mark.parametrize("name", CORE)
def test_core_module_declares_its_public_api(name):
    module = importlib.import_module(f"bnlib.{name}")
    assert hasattr(module, "__all__"), f"bnlib.{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"bnlib.{name}.__all__ names what it does not define: {missing}"
    defined_here = [n for n, obj in vars(module).items() if not n.startswith("_")
                    and (inspect.isfunction(obj) or inspect.isclass(obj))
                    and obj.__module__ == module.__name__]
    undeclared = sorted(set(defined_here) - set(module.__all__))
    assert not undeclared, f"bnlib.{name} defines public names not in __all__: {undeclared}"


def test_package_docstring_lists_every_core_module():
    import bnlib
    for name in CORE:
        if not name.startswith("_"):
            assert f"\n{name} " in bnlib.__doc__, f"bnlib's docstring does not list {name}"
