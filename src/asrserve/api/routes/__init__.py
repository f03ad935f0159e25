"""One router per area; the app factory mounts them."""
