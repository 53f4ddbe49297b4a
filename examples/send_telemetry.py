#!/usr/bin/env python3
"""Send a few page views and the feedback on a prediction from an app, straight to Kafka.

Needs a broker with the topics applied and a schema registry, e.g.:

    streamlearn kafka start && streamlearn topics apply
    streamlearn registry serve &
    python examples/send_telemetry.py

Settings come from STREAMLEARN_* variables (STREAMLEARN_KAFKA_BOOTSTRAP,
STREAMLEARN_SCHEMA_REGISTRY_URL, ...).
"""

from __future__ import annotations

import uuid

from streamlearn.client import TelemetryClient


def main() -> None:
    with TelemetryClient(app_version="example-shop 1.0.0") as telemetry:
        for page in ("/", "/products/7", "/cart"):
            event_id = telemetry.event(
                "page_view",
                user_id="user-42",
                url=f"https://shop.example{page}",
                user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
                properties={"page": page},
            )
            print(f"event {event_id}")
        # Feedback on a prediction the app showed (request id from the predict response).
        request_id = str(uuid.uuid4())
        telemetry.feedback(request_id, "impression", user_id="user-42")
        telemetry.feedback(request_id, "click", user_id="user-42")
        print(f"feedback for request {request_id}")
    print(f"delivered {telemetry.delivered} records")


if __name__ == "__main__":
    main()
