"""Tool servers the local stack runs for catalog tools: an HTTPS-style tool server, an MCP server
and Lambda-style tool functions, each counting what it was asked to do."""
