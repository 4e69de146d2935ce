"""MuseMorphic: latent-space symbolic music generation (codec -> latents -> prior)."""

__version__ = "0.1.0"
