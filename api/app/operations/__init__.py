"""Running the service: the prediction log's writer, the metrics, and drift
reports computed off the request path."""
