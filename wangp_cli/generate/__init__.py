"""Video generation through diffusers."""
