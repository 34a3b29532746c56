"""Print the permission matrix of test_permission_matrix.py as a Markdown table.

    python -m tests.arenasite.permission_table > /tmp/matrix.md

docs/reliability.md carries its output under "Permission matrix"; the test module is the
source, so regenerate the section after changing a row.
"""

from __future__ import annotations

import os
import sys


def render() -> str:
    from .test_permission_matrix import PERSONA_LABELS, PERSONAS, ROWS

    header = ["area", "what", "request", *(PERSONA_LABELS[p] for p in PERSONAS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in ROWS:
        request = f"`{row.method.upper()} {row.path.replace('|', '¦')}`"
        what = row.what + (f" ({row.note})" if row.note else "")
        lines.append("| " + " | ".join([row.area, what, request, *map(str, row.expected)]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arenasite.settings_test")
    import django

    django.setup()
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
