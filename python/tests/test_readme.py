"""The README's Python example runs as written."""

import os
import re

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def test_the_readme_example_runs():
    with open(README) as f:
        text = f.read()
    section = text[text.index("## From Python"):]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope = {}
    exec(compile(example, "README.md", "exec"), scope)
    assert scope["predicted"].shape == (128,)
