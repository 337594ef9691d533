"""``python -m wfrun``: the same command line as ``wfrun``, through the same launcher."""

from _wfrun_launcher import main

main()
