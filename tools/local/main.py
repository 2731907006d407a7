"""`make local`: the whole pipeline on this machine until Ctrl-C or SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tools.local.stack import LocalStack, StackSettings, running
from tools.topology import ROOT

# Where `make local` keeps its logs and state; a test sets its own, beside a developer's.
WORK_DIR = Path(os.environ.get("RECEIPT_PIPELINE_LOCAL_DIR") or ROOT / ".local")
STATE_FILE = WORK_DIR / "stack.json"  # lets `make demo` find a running stack
ENV_FILE = WORK_DIR / "env"  # lets `make replay` reach the running stack's emulators
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    print("starting the Pub/Sub and Firestore emulators and the functions...", flush=True)
    with running(StackSettings.from_env(os.environ, WORK_DIR)) as stack:
        try:
            write_private(STATE_FILE, json.dumps(describe(stack), indent=2))
            variables = {**stack.client_environment(), **stack.settings.topics}
            write_private(ENV_FILE, shell_assignments(variables))
            print_summary(stack)
            while True:
                signal.pause()  # until Ctrl-C or SIGTERM raises (tools.local.stop_signals)
        finally:
            print("\nstopping everything `make local` started...", flush=True)
            STATE_FILE.unlink(missing_ok=True)
            ENV_FILE.unlink(missing_ok=True)


def shell_assignments(variables: Mapping[str, str]) -> str:
    """`NAME=value` lines that a POSIX shell sources back to exactly these values, whatever
    they hold (spaces, quotes, `$`, newlines)."""
    for name in variables:
        if not SHELL_NAME.fullmatch(name):
            raise ValueError(f"not a shell variable name: {name!r}")
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in variables.items())


def write_private(path: Path, text: str) -> None:
    """Writes a file only its owner can read, from its first byte: a new file, created 0600
    (mkstemp), then renamed over the old one, so a reader never sees it half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def describe(stack: LocalStack) -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "webhook": stack.webhook_url,
        "signingKey": stack.signing_key,
        "clientToken": stack.client_token,
        "chatappStatusUrl": stack.chatapp_url("status"),
        "chatappInboundUrl": stack.chatapp_url("inbound"),
        "chatappAuditUrl": stack.chatapp_url("audit"),
        "apiEndpoint": stack.api_endpoint,
        "standin": stack.standin is not None,
        "rbmUrl": stack.rbm_url,
        "rbmClientToken": stack.rbm_client_token,
        "rbmApiEndpoint": stack.rbm_api_endpoint,
        "rbmStandin": stack.rbm_standin is not None,
        "whatsappUrl": stack.whatsapp_url,
        "whatsappAppSecret": stack.settings.secret("WHATSAPP_APP_SECRET"),
        "whatsappVerifyToken": stack.settings.secret("WHATSAPP_VERIFY_TOKEN"),
        "whatsappApiEndpoint": stack.whatsapp_api_endpoint,
        "whatsappStandin": stack.graph_standin is not None,
        "alibabaStandin": stack.alibaba.endpoint if stack.alibaba else None,
        **stack.client_environment(),
        "CHANGES_TOPIC": stack.settings.changes_topic,  # `make changes` follows it
    }


def print_summary(stack: LocalStack) -> None:
    standin = "   (loopback stand-in)"
    rows = [
        ("RCS Business Messaging", f"{stack.rbm_url}   (POST, signed with RBM_CLIENT_TOKEN)"),
        ("Business Messages", f"{stack.webhook_url}   (POST, signed with BM_SIGNING_KEY)"),
        (
            "WhatsApp",
            f"{stack.whatsapp_url}   (GET handshake with WHATSAPP_VERIFY_TOKEN; "
            "POST signed with WHATSAPP_APP_SECRET)",
        ),
        *((f"Chat App {kind}", stack.chatapp_url(kind)) for kind in ("status", "inbound", "audit")),
        ("Pub/Sub emulator", stack.pubsub_host),
        ("change stream", f"topic {stack.settings.changes_topic}   (`make changes` follows it)"),
        ("Firestore emulator", stack.firestore_host),
        ("Business Messages API", stack.api_endpoint + (standin if stack.standin else "")),
        ("RBM API", stack.rbm_api_endpoint + (standin if stack.rbm_standin else "")),
        (
            "WhatsApp Graph API",
            stack.whatsapp_api_endpoint + (standin if stack.graph_standin else ""),
        ),
        ("Chat App SMQ queues", smq_summary(stack)),
        ("logs", str(stack.log_dir)),
    ]
    lines = "\n".join(f"  {name:<23}{value}" for name, value in rows)
    print(
        f"\nReceipt pipeline running locally.\n{lines}\n"
        "Try `make demo` in another terminal (and `make changes` in a third). "
        "Ctrl-C stops everything.",
        flush=True,
    )


def smq_summary(stack: LocalStack) -> str:
    queues = stack.smq_environment()
    where = queues.get("CHATAPP_SMQ_ENDPOINT", "Alibaba's China site")
    kind = "   (loopback stand-in)" if stack.alibaba else ""
    return f"{where}, pulled every {stack.settings.pull_period_seconds:g} s{kind}"


if __name__ == "__main__":
    main()
