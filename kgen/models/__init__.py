"""Every model family; importing this registers them all."""

from kgen.models import autoregressive  # noqa: F401
from kgen.models import adversarial  # noqa: F401
from kgen.models import flows  # noqa: F401
from kgen.models import latent  # noqa: F401
from kgen.models.base import GenerativeModel

__all__ = ["GenerativeModel"]
