import json
import subprocess
import sys

CORE = ("evo.core.space", "evo.core.genome", "evo.core.variation", "evo.core.repair", "evo.core.fronts", "evo.core.selection", "evo.core.population")


def test_search_core_imports_neither_torch_nor_ray():
    # a fresh interpreter: this test process may already hold torch or ray from other tests
    code = (
        f"import json, sys\nimport {', '.join(CORE)}\n"
        "print(json.dumps({'loaded': sorted(m for m in sys.modules if m.startswith('evo.')),\n"
        "                  'heavy': sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray'))}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(CORE) <= set(modules["loaded"])
    assert modules["heavy"] == []
