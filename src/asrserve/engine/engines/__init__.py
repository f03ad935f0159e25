"""Recognition engines behind one protocol (`base.Engine`)."""
