import json
import subprocess
import sys

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# every module of the pure core and of hardware/ (found on disk, so a new module is covered too)
CORE = tuple(sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                    for folder in ("evo/core", "hardware") for p in (ROOT / folder).glob("*.py")))


def test_search_core_imports_neither_torch_nor_ray():
    # a fresh interpreter: this test process may already hold torch or ray from other tests
    code = (
        f"import json, sys\nimport {', '.join(CORE)}\n"
        "print(json.dumps({'loaded': sorted(m for m in sys.modules if m.split('.')[0] in ('evo', 'hardware')),\n"
        "                  'heavy': sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray'))}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(CORE) <= set(modules["loaded"])
    assert modules["heavy"] == []
