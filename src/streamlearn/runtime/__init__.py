"""The agents' runtime: the step contract, and what runs steps.

A step (:class:`Step`) is an agent's logic over plain data; :mod:`.worker` runs steps in a
Faust worker on Kafka, :mod:`.local` runs them in memory, and :mod:`.checks` holds the
contract every step passes. Faust's private members are touched in
:mod:`.faust_internals` only, and listed for the guard in :mod:`.faust_guard`.
"""

from streamlearn.runtime.environment import StepEnvironment
from streamlearn.runtime.event_time import EventClock
from streamlearn.runtime.step import Emit, Record, Step, Stores

__all__ = ["Emit", "EventClock", "Record", "Step", "StepEnvironment", "Stores"]
