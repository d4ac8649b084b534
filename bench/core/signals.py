"""How a command ends when asked to, and how the processes it starts end with it.

SIGTERM and SIGHUP end a `bench` command as Ctrl-C does (finished runs kept, local workers
stopped, SLURM jobs left running and said so), with exit code 128 + the signal: 143, 129,
130. A local worker process ends when its submitter dies, however it dies (SIGKILL
included): on Linux the kernel tells it (`PR_SET_PDEATHSIG`), elsewhere a thread watches
its parent.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from types import FrameType

STOPPING = (signal.SIGTERM, signal.SIGHUP)
SUBMITTER = "BENCH_SUBMITTER_PID"  # environment variable: the pid a worker ends with
_received: list[int] = []


def _stop(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Make SIGTERM and SIGHUP raise `KeyboardInterrupt` in the main thread, as Ctrl-C does
    (only the main thread may set handlers: elsewhere, as when embedded, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOPPING:
        signal.signal(signum, _stop)


def exit_code() -> int:
    """The exit code of a command ended by a signal: 128 + the last one (Ctrl-C: 130)."""
    return 128 + (_received[-1] if _received else signal.SIGINT)


def stopped_by() -> str:
    """How the command was ended, for messages: `interrupted` or `stopped by SIGTERM`."""
    return f"stopped by {signal.Signals(_received[-1]).name}" if _received else "interrupted"


def end_with_submitter() -> None:
    """In a worker process: end (as on SIGTERM) when the process named by `$SUBMITTER`
    dies, and at once if it already has."""
    submitter = int(os.environ.get(SUBMITTER, "0"))
    if not submitter:
        return
    stop_on_signals()
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    else:
        threading.Thread(target=_watch, args=(submitter,), daemon=True).start()
    if os.getppid() != submitter:  # it died before the kernel was told
        os.kill(os.getpid(), signal.SIGTERM)


def _watch(submitter: int) -> None:
    while os.getppid() == submitter:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
