"""Training over N processes: ``torchrun`` started as a subprocess whose output streams back line by line.

The stage's command-line entry point (``oxy_dagster.model.cli`` for pre-training) reads one JSON job spec;
its rank 0 prints one ``OXY_PROGRESS {...}`` line per logged step. ``launch`` hands those records to
``on_record`` (MLflow metrics, Dagster logs) and every other line to ``on_line`` (the caller's log), keeps
the last lines for the error message of a failed run, and stops the whole process group when the caller is
interrupted (a terminated Dagster run), so no rank outlives its launcher.

CPU threads are split between the ranks (``OMP_NUM_THREADS`` = cores // processes); on GPU each rank takes
one device and the backend is NCCL (chosen in ``zero.init_process_group``).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from collections.abc import Callable

from ..infra.process import stop_process_group
from ..net import free_port

PROGRESS = "OXY_PROGRESS "


def progress_line(record: dict) -> str:
    """The line a rank-0 trainer prints for one logged step (parsed back by ``launch``)."""
    return PROGRESS + json.dumps(record, default=float)


def torchrun_command(module: str, args: list[str], processes: int, port: int | None = None) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master_addr", "127.0.0.1", "--master_port", str(port or free_port()), "-m", module, *args]


def launch(module: str, args: list[str], processes: int, on_line: Callable[[str], None] | None = None,
           on_record: Callable[[dict], None] | None = None, env: dict | None = None,
           timeout_s: float | None = None) -> None:
    """Run ``module`` under ``torchrun --nproc_per_node processes``; raises with the output's tail if it fails."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, not {processes}")
    threads = max(1, (os.cpu_count() or 1) // processes)
    child_env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1", **(env or {})}
    cmd = torchrun_command(module, args, processes)
    tail: collections.deque[str] = collections.deque(maxlen=200)  # torchrun's own failure report alone runs ~40
    # text mode reads tqdm's carriage returns as line ends, so a progress bar arrives as lines too
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env=child_env, start_new_session=True)
    try:
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            at = line.find(PROGRESS)  # stderr shares the pipe: a progress bar's last frame may precede it
            if at >= 0:
                if on_record:
                    on_record(json.loads(line[at + len(PROGRESS):]))
                line = line[:at]
                if not line.strip():
                    continue
            tail.append(line)
            if on_line:
                on_line(line)
        rc = proc.wait(timeout=timeout_s)
    finally:
        stop_process_group(proc)  # the caller was interrupted: no rank outlives it
    if rc != 0:
        shown = "\n".join(tail)
        raise RuntimeError(f"{processes}-process training ({' '.join(cmd[2:])}) exited with code {rc}; "
                           f"its last lines:\n{shown}")


def is_lead_rank() -> bool:
    """Rank 0 of a launcher, or a process started without one: the one that writes files and prints progress."""
    return int(os.environ.get("RANK", 0)) == 0
