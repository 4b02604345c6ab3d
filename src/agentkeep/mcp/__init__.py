"""The MCP server: ``agentkeep mcp`` over stdio, and the same tools mounted on ``serve``
(streamable HTTP, behind the server's security). Tools map onto the store's services.

TODO(mcp).
"""
