"""The Temporal backend (``pip install 'wfrun[temporal]'``): the same decorated code on a cluster.

``import wfrun`` never imports this package, and this package is the only one that imports
``temporalio``. How wfrun's model maps onto Temporal's, the contract that the worker side
(which serves workflows and activities) and the client side (``wfrun start/signal/... --temporal``)
both keep:

- A wfrun workflow runs as a Temporal workflow whose *type* is the workflow's defined name
  (``@workflows.workflow.define(name=...)``, else the class name). An activity runs as a Temporal
  activity whose type is the activity's name. A run id is a Temporal workflow id.
- Every payload is JSON in wfrun's encoding (`wfrun.payload`), with Temporal's ``json/plain``
  encoding, so that Temporal's own tools show it: a workflow's input is *one* payload, the JSON
  object of its entrypoint's arguments by name (`WorkflowDefinition.encode_input`), its result one
  payload; signals, queries and updates likewise take one object of their handler's arguments by
  name and answer one payload. See `wfrun.temporal.converter`.
- The default task queue is `TASK_QUEUE` and the default namespace `NAMESPACE`.
"""

from __future__ import annotations

from typing import Final

#: The task queue that ``wfrun worker`` serves and ``wfrun start --temporal`` uses by default.
TASK_QUEUE: Final = "wfrun"
#: Temporal's own default namespace.
NAMESPACE: Final = "default"
