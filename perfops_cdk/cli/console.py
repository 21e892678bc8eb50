"""Where the CLI prints: one console for stdout, one for stderr, shared by every command.

Every message is one line however long (``soft_wrap``): piped into a log, rich would
wrap at 80 columns, and a line that names a region, a quota and its numbers, or an
error with the construct path, must stay one line to read and to grep. On a terminal,
the terminal wraps it. Tables still fit the width.
"""

from __future__ import annotations

from rich.console import Console

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
