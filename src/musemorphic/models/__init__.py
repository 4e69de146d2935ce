"""Codecs and priors, each rebuilt from a dataclass config; presets include `tiny` for tests."""
