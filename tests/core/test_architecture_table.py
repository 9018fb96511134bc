"""README.md's architecture table is current: every WanGP 12 base type, with the status the families give it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_table_is_current():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "architecture_table.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, ("README.md's architecture table is stale: run "
                                    "'.venv/bin/python tools/architecture_table.py'" + result.stderr)


def test_every_base_type_has_a_row():
    from wangp_cli.core.registry import architecture_ids

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {line.split("`")[1] for line in text.splitlines() if line.startswith("| `")}
    assert set(architecture_ids("v12")) <= rows and len(architecture_ids("v12")) == 126
