"""`python -m maasflow.readme`: rewrite the README's configuration table from the option table.

The table between the `settings-reference` markers is generated, never edited by hand;
`tests/docs/test_readme.py` fails when it drifts from `maasflow.daemon.flags.OPTIONS`, the
table the settings model takes its environment names from.
"""

from __future__ import annotations

import sys
from pathlib import Path

from maasflow.daemon.flags import render_reference_markdown

START, END = "<!-- settings-reference:start -->", "<!-- settings-reference:end -->"


def refresh(readme: Path) -> bool:
    """Rewrite the block; True when the file changed."""
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _old, tail = rest.split(END, 1)
    new = f"{head}{START}\n{render_reference_markdown().strip()}\n{END}{tail}"
    if new == text:
        return False
    readme.write_text(new)
    return True


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    print("updated" if refresh(path) else "up to date", path)
