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


def test_every_tick_in_the_feature_table_names_a_test_that_exists():
    root = pathlib.Path(__file__).parents[1]
    text = (root / "README.md").read_text()
    section = text.split("### Against the peers", 1)[1].split("\n#", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| ") and not r.startswith("| feature")]
    assert len(rows) >= 7
    for row in rows:
        ours = row.split(" | ")[1]
        if not ours.startswith("✔"):
            continue
        named = re.findall(r"`(test_\w+\.py)(?:::(\w+))?`", ours)
        assert named, f"the rnnjax tick names no test: {row}"
        for file, function in named:
            source = (root / "tests" / file).read_text()
            assert not function or re.search(rf"^def {function}\(", source, flags=re.M), f"{file}::{function} is not a test"
