"""A loopback stand-in for the two Alibaba services a Chat App queue puller talks to.

- `token_service.py`: Dybaseapi's `QueryTokenForMnsQueue`, checking the caller's AccessKey
  signature (ACS3-HMAC-SHA256 or HMAC-SHA1) and issuing expiring STS credentials for the
  queue of one MessageType;
- `queues.py`: the Chat App receipt queues behind MNS's (SMQ's) queue REST contract, checked
  with those credentials: long polls, visibility timeouts, single and batch deletes;
- `faults.py`: what tests script (expired tokens, errors, slow answers, refused deletes);
- `wire.py`: the answer, refusal and call log both services share;
- `server.py`: `AlibabaStandIn`, both services on one loopback port, and the control path
  through which another process (`make demo`) enqueues and reads the counts.
"""

from tools.standins.alibaba.server import AlibabaStandIn

__all__ = ["AlibabaStandIn"]
