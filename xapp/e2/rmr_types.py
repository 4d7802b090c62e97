"""RMR message types of the O-RAN SC near-RT RIC (``RIC_message_types``) for the E2AP messages.

In the RIC, E2 termination and the subscription manager route E2AP PDUs to and from xApps as RMR
messages of these types; the bytes are the APER-encoded ``E2AP-PDU`` unchanged.
"""

from __future__ import annotations

from typing import Final

RIC_SUB_REQ: Final = 12010
RIC_SUB_RESP: Final = 12011
RIC_SUB_FAILURE: Final = 12012
RIC_SUB_DEL_REQ: Final = 12020
RIC_SUB_DEL_RESP: Final = 12021
RIC_SUB_DEL_FAILURE: Final = 12022
RIC_INDICATION: Final = 12050
