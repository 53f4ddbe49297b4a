"""The stream-processing agents (Faust): preprocess and sessionise, built by
:func:`streamlearn.agents.app.create_faust_app`."""
