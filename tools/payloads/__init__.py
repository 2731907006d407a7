"""Realistic provider requests (signed, shaped as each platform sends them) for tests,
the demo and the bench; each module's `KIT` serves the providers' contract suite."""

from tools.payloads import bm, chatapp, rbm, whatsapp
from tools.payloads.kit import ProviderKit

KITS: dict[str, ProviderKit] = {
    kit.name: kit for kit in (bm.KIT, chatapp.KIT, rbm.KIT, whatsapp.KIT)
}
