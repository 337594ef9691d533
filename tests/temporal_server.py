"""The Temporal dev server the tests start once per session (`conftest.temporal_server`)."""

from wfrun.temporal.devserver import DevServer, free_port, start_dev_server, temporal_binary

__all__ = ["DevServer", "free_port", "start_dev_server", "temporal_binary"]
