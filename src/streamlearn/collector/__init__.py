"""The HTTP telemetry collector: :func:`streamlearn.collector.app.create_collector_app`."""
