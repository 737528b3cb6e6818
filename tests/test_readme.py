"""The README's Python examples run as written."""

import pathlib
import re


def test_readme_python_example_runs():
    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python example"
    namespaces = []
    for block in blocks:
        namespace = {}
        exec(compile(block, "README.md", "exec"), namespace)
        namespaces.append(namespace)
    assert set(namespaces[0]["grads"]) == {"cell", "readout"}  # the first example: BPTT in a few lines
    sweep_example = next(n for n in namespaces if "rows" in n)  # the sweep example: 16 models, one program
    assert len(sweep_example["rows"]) == 16 and sweep_example["results"]["loss"].shape == (16, 20)
