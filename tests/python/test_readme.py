"""The README's Python quick start trains as written: its code block, run verbatim from the
repository root, builds shards of the fixtures and trains a small network whose loss falls and
never diverges (the failure a newcomer saw with the paper's level-scale inputs)."""

import math
import re
import subprocess
import sys

from conftest import ROOT, require


def quickstart_code():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    marker = text.index("<!-- quickstart-python -->")
    block = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert block, "the quick start's python block follows its marker"
    return block.group(1)


def test_the_python_quick_start_trains_as_written():
    require("torch")
    proc = subprocess.run([sys.executable, "-c", quickstart_code()], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    losses = [float(m) for m in re.findall(r"epoch \d+: mean loss ([0-9.eE+-]+|nan|inf)", proc.stdout)]
    assert len(losses) == 10, proc.stdout
    assert all(math.isfinite(v) and v < 5 for v in losses), losses  # chance is ln 4 = 1.39
    assert min(losses[-3:]) < 0.75 * losses[0], losses
