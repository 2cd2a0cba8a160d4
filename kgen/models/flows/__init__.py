"""Normalizing flows on TensorFlow Probability bijectors (TensorFlow and JAX backends).

Importing this package works on every backend (TFP loads on the first flow
built); building a flow on PyTorch raises `kgen.errors.BackendError`.
"""

from kgen.models.flows.base import Flow
from kgen.models.flows.glow import Glow
from kgen.models.flows.iaf import IAF
from kgen.models.flows.maf import MAF
from kgen.models.flows.nice import NICE
from kgen.models.flows.real_nvp import RealNVP
from kgen.models.flows.spline_flow import SplineFlow

__all__ = ["Flow", "Glow", "IAF", "MAF", "NICE", "RealNVP", "SplineFlow"]
