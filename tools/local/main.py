"""`make local`: the whole pipeline on this machine until Ctrl-C or SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
from types import FrameType

from tools.local.stack import LocalStack, StackSettings
from tools.topology import ROOT

WORK_DIR = ROOT / ".local"
STATE_FILE = WORK_DIR / "stack.json"  # lets `make demo` find a running stack
ENV_FILE = WORK_DIR / "env"  # lets `make replay` reach the running stack's emulators


def preflight() -> None:
    missing = [tool for tool in ("gcloud", "java") if shutil.which(tool) is None]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: install the Google Cloud CLI with its Pub/Sub and "
            "Firestore emulators (google-cloud-cli-pubsub-emulator, "
            "google-cloud-cli-firestore-emulator) and a Java 11+ runtime"
        )


def main() -> None:
    preflight()
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stack = LocalStack(StackSettings.from_env(os.environ, WORK_DIR))
    print("starting the Pub/Sub and Firestore emulators and the functions...", flush=True)
    stack.start()
    try:
        STATE_FILE.write_text(json.dumps(describe(stack), indent=2))
        ENV_FILE.write_text(
            "".join(
                f"{k}={v}\n"
                for k, v in {**stack.client_environment(), **stack.settings.topics}.items()
            )
        )
        print_summary(stack)
        stop.wait()
    finally:
        print("\nstopping everything `make local` started...", flush=True)
        STATE_FILE.unlink(missing_ok=True)
        ENV_FILE.unlink(missing_ok=True)
        stack.stop()


def describe(stack: LocalStack) -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "webhook": stack.webhook_url,
        "signingKey": stack.signing_key,
        "clientToken": stack.settings.client_token,
        "chatappStatusUrl": stack.chatapp_url("status"),
        "chatappInboundUrl": stack.chatapp_url("inbound"),
        "chatappAuditUrl": stack.chatapp_url("audit"),
        "apiEndpoint": stack.api_endpoint,
        "standin": stack.standin is not None,
        **stack.client_environment(),
    }


def print_summary(stack: LocalStack) -> None:
    print(
        f"""
Receipt pipeline running locally.
  Business Messages     {stack.webhook_url}   (POST, signed with BM_SIGNING_KEY)
  Chat App status       {stack.chatapp_url("status")}
  Chat App inbound      {stack.chatapp_url("inbound")}
  Chat App audit        {stack.chatapp_url("audit")}
  Pub/Sub emulator      {stack.pubsub_host}
  Firestore emulator    {stack.firestore_host}
  Business Messages API {stack.api_endpoint}{"   (loopback stand-in)" if stack.standin else ""}
  logs                  {stack.log_dir}
Try `make demo` in another terminal. Ctrl-C stops everything.""",
        flush=True,
    )


if __name__ == "__main__":
    main()
