"""The README's examples, run as written."""
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_config_error_is_real_output():
    """The README shows `$ trackformer ...` and the one line it prints: the same line today."""
    block = re.search(r"```\n\$ (trackformer [^\n]+)\n(trackformer: error: [^\n]+)\n```", README.read_text())
    assert block, "README has no config-error example"
    command, shown = block.groups()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKFORMER_")}
    result = subprocess.run([sys.executable, "-m", "trackformer", *command.split()[1:]], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == shown
