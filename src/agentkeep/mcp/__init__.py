"""The MCP server: ``agentkeep mcp`` over stdio, and the same tools mounted on ``serve``
(streamable HTTP, behind the server's security). Tools map onto the store's services
(docs/mcp.md). Modules:

* :mod:`.tools` — what each tool does over an open store, in the CLI's JSON shapes (no SDK).
* :mod:`.server` — the tools registered with the official SDK (``MCPServer``), with their
  schemas and annotations; errors as the CLI's JSON error; the stdio entry point.
* :mod:`.http` — the ``/mcp`` route of ``serve`` (stateless, JSON responses) and the SDK's
  session manager run inside serve's lifespan.

Only ``agentkeep mcp`` and ``serve`` import the SDK (the ``mcp`` extra).
"""
