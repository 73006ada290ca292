"""How grant-worker talks to Auth0: the HTTP session, tokens, the Management API calls, and
the translation of every answer into the error tree."""
