"""The FastAPI application: settings, middleware, routes and schemas."""
