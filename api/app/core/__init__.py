"""The service's core: settings, access policy, errors, request context and
the handling of request bodies — what every route relies on."""
