"""``streamlearn up``: the whole system on this machine, as supervised processes.

- :mod:`~streamlearn.up.system`: the order things start and stop in;
- :mod:`~streamlearn.up.children`: child processes, crash reports and restarts;
- :mod:`~streamlearn.up.probes`: reading the parts' metrics endpoints;
- :mod:`~streamlearn.up.report`: the figures and the final checks;
- :mod:`~streamlearn.up.view`: the live terminal view;
- :mod:`~streamlearn.up.parts`: the parts it runs and their ports;
- :mod:`~streamlearn.up.chaos`, :mod:`~streamlearn.up.chaos_run`, :mod:`~streamlearn.up.drain`,
  :mod:`~streamlearn.up.invariants`: ``--chaos``'s faults, drain and invariants.
"""

from streamlearn.up.options import UpOptions
from streamlearn.up.signing_key import LOCAL_SIGNING_KEY_FILE, local_signing_key
from streamlearn.up.simulation import SIMULATE_DEFAULTS
from streamlearn.up.system import run_up

__all__ = [
    "LOCAL_SIGNING_KEY_FILE",
    "SIMULATE_DEFAULTS",
    "UpOptions",
    "local_signing_key",
    "run_up",
]
