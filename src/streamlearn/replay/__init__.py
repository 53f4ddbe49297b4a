"""Replay: rebuild and verify models from the log, reset consumer groups.

``streamlearn replay model`` trains a model on a range of ``training.examples`` with the
learner's own code and publishes it (next version, or a shadow name an experiment arm can
route to); ``replay verify`` recomputes published snapshots from the offsets they record
and compares them byte for byte; ``replay reset`` moves a stopped consumer group's
offsets. Every command shows its plan first (``--dry-run`` stops there) and fails at once
when the log no longer holds the range asked for. See docs/replay.md.
"""
