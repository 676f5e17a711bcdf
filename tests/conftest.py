"""Fixtures of the core's tests."""
import pytest


@pytest.fixture
def toy_plugins(monkeypatch):
    """The toy plugin loaded alone (installed plugins are not autoloaded), forgotten afterwards."""
    from trackformer.plugins import load_plugins, reset_plugins

    monkeypatch.setenv("TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD", "1")
    reset_plugins()
    yield load_plugins(["toy_plugin"])
    reset_plugins()
