"""The `asrserve` command."""
