"""The request bodies of the Barbican v1 API, each written once as a JSON Schema (one module per resource).

The route validates a body with its schema's compiled validator, and ``api/openapi.py`` puts the very same
schema object in the document's ``requestBody``: what is documented is what is accepted.
"""
