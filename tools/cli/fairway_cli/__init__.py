"""The fairway command line."""
