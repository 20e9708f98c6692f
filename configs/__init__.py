"""Shipped YAML presets and examples (hp/, pipeline/, train/), read as package data."""
