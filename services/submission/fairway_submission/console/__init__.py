"""The web console: server-rendered pages over the API's own functions (see docs/console.md)."""
