"""``python -m edgekd_runtime``: the CLI, for a device where the folder was copied rather than pip-installed."""
import sys

from .cli import main

sys.exit(main())
