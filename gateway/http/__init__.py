"""The HTTP layer: middlewares, routes, the SSE wire format, app keys, the OpenAPI document."""
