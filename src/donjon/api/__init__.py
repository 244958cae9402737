"""HTTP: routes, request parsing, response shapes. Handlers parse, authenticate, call a service, serialise."""
