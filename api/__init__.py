"""The API layer: the API families (prefix, authentication, error shape, casing), the base
view every endpoint uses, and what it does on every request (authentication and its
brute-force guard, rate limits, idempotency keys, paging, the OpenAPI additions)."""
