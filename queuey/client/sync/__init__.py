"""The blocking client: :class:`Client`, its :class:`Queue` and :class:`Group` handles.

``client`` holds the connection pool and the retrying of calls, ``queue`` and
``group`` the handles, ``consume`` the loop of :meth:`Group.consume`.
"""

from queuey.client.sync.client import Client
from queuey.client.sync.group import Group
from queuey.client.sync.queue import Queue

__all__ = ["Client", "Group", "Queue"]
