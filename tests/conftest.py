"""Markers shared by the whole suite."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: runs a lesson's headline training claims on TEST_SEEDS (part of make test)")
