"""Realistic provider requests (signed, shaped as each platform sends them) for tests,
the demo and the bench; each module's `CONTRACT_REQUESTS` serves the providers' contract
suite and holds `make local`'s credentials."""

from tools.payloads import bm, chatapp, rbm, whatsapp
from tools.payloads.contract import ContractRequests

CONTRACT_REQUESTS_BY_PROVIDER: dict[str, ContractRequests] = {
    platform.name: platform
    for platform in (
        bm.CONTRACT_REQUESTS,
        chatapp.CONTRACT_REQUESTS,
        rbm.CONTRACT_REQUESTS,
        whatsapp.CONTRACT_REQUESTS,
    )
}
