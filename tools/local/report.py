"""`make report` on this machine.

With GOOGLE_CLOUD_PROJECT set, it reports on that project (or on the emulator that
FIRESTORE_EMULATOR_HOST names). Otherwise on the running `make local`; and with none running,
on a stack of its own into which it first plays the demo, since the emulators keep nothing
once stopped.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from shared.ops import report
from tools.local import demo
from tools.local.stack import StackSettings, running


def main(argv: Sequence[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("GOOGLE_CLOUD_PROJECT"):
        report.main(arguments)
        return
    make_local = demo.running_stack()
    if make_local is not None:
        print(f"reporting on the running `make local` (Firestore at {make_local.firestore_host})")
        _use_emulator(make_local)
        report.main(arguments)
        return
    print("no `make local` running: starting a stack and playing the demo into it first...")
    with (
        tempfile.TemporaryDirectory(prefix="receipt-report-") as work_dir,
        running(StackSettings(work_dir=Path(work_dir))) as stack,
    ):
        target = demo.Target.of(stack)
        demo.play(target)
        _use_emulator(target)
        report.main(arguments)


def _use_emulator(target: demo.Target) -> None:
    os.environ.update(
        GOOGLE_CLOUD_PROJECT=target.project, FIRESTORE_EMULATOR_HOST=target.firestore_host
    )


if __name__ == "__main__":
    main()
