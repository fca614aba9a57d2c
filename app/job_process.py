"""The child side of a job run in its own process (no Qt here: the child only imports the engine).

Why a process: a job in a thread of the GUI process shares the GIL, and parts of the engine hold it
for long stretches (numba compiling kernels on first use, imports, some torch calls): measured, the
GUI thread then stalls for 300-700 ms at a time. In a child process the GUI thread never waits.

Messages to the parent are pickled tuples on a pipe: ("event", Event), ("log", level, text),
("result", JobResult), ("error", kind, message, detail). Events are coalesced here as in the GUI
(only the newest snapshot is sent), so a fast training loop does not flood the pipe.
"""

from __future__ import annotations

import logging
import pickle
import threading
import traceback

SEND_INTERVAL_S = 0.05


class _Sender:
    def __init__(self, conn):
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, message) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self.lock:
            self.conn.send_bytes(data)


class _PipeLogHandler(logging.Handler):
    def __init__(self, sender: _Sender):
        super().__init__(level=logging.INFO)
        self.sender = sender
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record):
        try:
            self.sender.send(("log", record.levelname.lower(), self.format(record)))
        except Exception:  # the parent went away; nothing useful to do with a log line
            pass


def child_main(job_fn, inputs, out_dir, options, conn, cancel_event, torch_threads=None) -> None:
    """Entry point of the job process (multiprocessing 'spawn' target)."""
    from engine.errors import Cancelled, HandfulError
    from engine.events import CancelToken

    from .job_mailbox import EventMailbox

    if torch_threads:
        import torch

        torch.set_num_threads(int(torch_threads))
    sender = _Sender(conn)
    handler = _PipeLogHandler(sender)
    for name in ("engine", "app"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    mailbox = EventMailbox()
    done = threading.Event()

    def pump():
        while not done.wait(SEND_INTERVAL_S):
            for event in mailbox.take():
                sender.send(("event", event))

    pump_thread = threading.Thread(target=pump, name="job-events", daemon=True)
    pump_thread.start()
    try:
        result = job_fn(inputs, out_dir, options, emit=mailbox.put, cancel=CancelToken(cancel_event))
        outcome = ("result", result)
    except Cancelled as e:
        outcome = ("error", "cancelled", str(e), None)
    except HandfulError as e:
        outcome = ("error", "failed", str(e), traceback.format_exc())
    except BaseException as e:  # a bug or a crash in the engine: the person gets a message
        outcome = ("error", "crashed", f"{type(e).__name__}: {e}", traceback.format_exc())
    done.set()
    pump_thread.join()
    for event in mailbox.take():
        sender.send(("event", event))
    try:
        sender.send(outcome)
    except Exception as e:  # e.g. an unpicklable result: still end with a message
        sender.send(("error", "crashed", f"could not hand the result back ({e})", traceback.format_exc()))
    conn.close()
