"""moe-diffuse for Krita: generation through libmoediffuse (ctypes)."""
from krita import Krita

from .extension import MoeDiffuseExtension

Krita.instance().addExtension(MoeDiffuseExtension(Krita.instance()))
