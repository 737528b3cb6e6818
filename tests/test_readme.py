"""The README's Python example runs as written."""

import pathlib
import re


def test_readme_python_example_runs():
    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python example"
    for block in blocks:
        namespace = {}
        exec(compile(block, "README.md", "exec"), namespace)
        assert "grads" in namespace
        assert set(namespace["grads"]) == {"cell", "readout"}
