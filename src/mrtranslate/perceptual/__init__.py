"""Perceptual study: build a real-vs-synthetic image set, serve it to readers, analyse answers."""
