"""Where a change comes from: the store and key a CLI uses, and whether a worker agrees.

Every change a CLI sends carries its ClientOrigin: the artifact store it uploaded to
(`settings.artifacts_location()`) and the fingerprint of the public key it sealed secure
values with. A worker whose own store or key differs refuses the change at once with
`refusal`'s message, rather than failing later per instance (code it cannot find, values
it cannot decrypt). Requests without an origin (clients before this check, the stack's
own loops) are not checked.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ClientOrigin(BaseModel):
    model_config = ConfigDict(frozen=True)

    store: str
    key_fingerprint: str | None = None  # None: the sender has no key (and sealed nothing)


def refusal(sent: ClientOrigin | None, own: ClientOrigin | None) -> str | None:
    """Why a change sent from `sent` is refused by a worker that is `own`; None: accepted.

    A sender without a key is checked on its store only: it sealed nothing.
    """
    if sent is None or own is None:
        return None
    same_store = sent.store == own.store
    same_key = sent.key_fingerprint is None or sent.key_fingerprint == own.key_fingerprint
    if same_store and same_key:
        return None
    settings = [
        name
        for name, same in (("OPSFLOW_ARTIFACTS", same_store), ("OPSFLOW_SECRET_KEY", same_key))
        if not same
    ]
    advice = " and ".join(settings)
    if not same_key:
        advice += " (or unset it to use the key the workers publish in their store)"
    return (
        f"this change was sent with {_describe(sent)}, but the workers use {_describe(own)}: "
        f"set {advice} as the workers do"
    )


def _describe(origin: ClientOrigin) -> str:
    key = f"key {origin.key_fingerprint}" if origin.key_fingerprint else "no key"
    return f"store {origin.store} and {key}"
