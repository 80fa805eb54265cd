"""The live loop: protocol, server, client, policy, safety gate and instrument adapters.

The instrument side (client, loop, policy, protocol, adapters, simulated microscope) imports
numpy and pyzmq only, so the instrument PC needs no TensorFlow; the server takes any voter and
imports the family only when asked to (:func:`instrument_bridge.server.family_voter`).
"""

from instrument_bridge.instrument import (
    Action,
    ActionResult,
    Instrument,
    InstrumentError,
    InstrumentTimeout,
    SafeInstrument,
    SafetyLimits,
    SafetyViolation,
    ScanResult,
)
from instrument_bridge.policy import PolicyConfig, TipPolicy
from instrument_bridge.prepare import FrameError, prepare_frame
from instrument_bridge.protocol import PROTOCOL_VERSION, Message, ProtocolError

__all__ = [
    "PROTOCOL_VERSION",
    "Action",
    "ActionResult",
    "FrameError",
    "Instrument",
    "InstrumentError",
    "InstrumentTimeout",
    "Message",
    "PolicyConfig",
    "ProtocolError",
    "SafeInstrument",
    "SafetyLimits",
    "SafetyViolation",
    "ScanResult",
    "TipPolicy",
    "prepare_frame",
]
