"""What a granian worker of ``queuey serve`` does first: die with the main process.

granian's workers are child processes of ``queuey serve``. The main process
stops them at SIGTERM, but a SIGKILL of the main process (an operator's
``kill -9``, the OOM killer) would leave them serving on the inherited
socket, holding the port, with nobody to stop them. On Linux each worker
asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), so
the workers die with the main process and the port is free again.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queuey.api.http import ASGIApp

#: Set by ``queuey serve`` to its own pid before any worker starts.
PARENT_ENV = "QUEUEY_SERVE_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> bool:
    """Have the kernel SIGKILL this process when its parent dies; False where it cannot.

    ``parent`` is the pid the parent had: if it died before the request was
    made (this process was then handed to another parent and no signal will
    come), this process kills itself at once. The signal follows the parent
    *thread* that forked this process; granian forks its workers from its
    main thread, which lives as long as its process.
    """
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    # Checked after the request, not before: a parent that dies in between is caught here.
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    return True


def app() -> ASGIApp:
    """App factory for granian's workers: die with ``queuey serve``, then build the app."""
    parent = os.environ.get(PARENT_ENV)
    if parent is not None:
        die_with_parent(int(parent))
    from queuey.api.app import from_environment  # the app is the worker's, not the CLI's

    return from_environment()
