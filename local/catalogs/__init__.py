"""The example catalog the local stack runs beside the shipped one: a billing agent with an
``http`` and a ``lambda`` tool, an ops agent with an MCP server and a client-run tool."""
