"""``agentkeep serve``: the HTTP API, live streams, the dashboard and the MCP endpoint.

Built on the store's services like the CLI: no SQL here (tests/test_layers.py). The CLI,
hooks and library never need the server. Modules:

* :mod:`.context` — what every route shares: the pool of open stores (a request's go back
  when its response is sent), the install's token and the hosts and origins the server
  answers.
* :mod:`.respond` — the JSON shapes of docs/json-output.md, as HTTP responses.
* :mod:`.app` — the application: routes from :mod:`.api`, :mod:`.live`,
  :mod:`.dashboard` and :mod:`agentkeep.mcp`, behind :mod:`.security`.
* :mod:`.process` — the server process: ``server.json``, the lock, start and stop.
"""
