"""Driving priors and codecs: unconditional, controlled, continued and endless generation."""
