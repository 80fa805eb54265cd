"""The instrument side of the live loop (numpy only: no TensorFlow on the instrument PC).

So far: :func:`prepare_frame`, the levelling and 128x128 preparation the family was trained
with, for raw height data from a controller. The ZeroMQ bridge, the tip-conditioning policy and
the instrument adapters are the live-loop issue's work.
"""

from instrument_bridge.prepare import prepare_frame

__all__ = ["prepare_frame"]
