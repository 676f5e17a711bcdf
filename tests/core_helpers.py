"""Running the CLI in a subprocess, as a user would."""
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def cli(*args, env=None, cwd=None, timeout=300):
    """Run `python -m trackformer -p toy_plugin ARGS`; returns the CompletedProcess. Installed plugins
    are not autoloaded unless `env` sets TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD="" (the core's tests must
    not depend on them)."""
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                "CI": "1", "TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD": "1"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "trackformer", "-p", "toy_plugin", *map(str, args)],
                          capture_output=True, text=True, env=full_env, cwd=cwd or TESTS, timeout=timeout)


def error_line(result) -> str:
    """The one line a failed command printed: exit status 2, no traceback, no other message."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("trackformer: ")]
    assert len(lines) == 1 and lines[0].startswith("trackformer: error: "), result.stderr
    return lines[0]
