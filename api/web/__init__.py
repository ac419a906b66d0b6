"""HTTP plumbing every family shares: authentication, the documented error bodies, body limits,
path and query parameters, request parsing and Idempotency-Key, JSON responses, database work off
the event loop, the OpenAPI document."""
