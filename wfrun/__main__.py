"""``python -m wfrun``: the command line (``wfrun`` itself starts in `_wfrun_launcher`)."""

from .cli import main

main()
