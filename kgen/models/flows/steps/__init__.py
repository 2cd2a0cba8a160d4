"""Invertible steps of the flows, by kind (see `base.py` for the protocol every step follows)."""

from kgen.models.flows.steps.base import broadcast_like, FlowStep, Reverse, squeeze2x2, unsqueeze2x2
from kgen.models.flows.steps.couplings import AffineCoupling, checkerboard_mask, channel_mask, MaskedAffineCoupling, ChannelCoupling
from kgen.models.flows.steps.autoregressive import MaskedAutoregressive, SplineCoupling, spline_from_params
from kgen.models.flows.steps.normalization import BatchNorm, ActNorm
from kgen.models.flows.steps.elementwise import DiagonalScale, LogitTransform
from kgen.models.flows.steps.convolutions import InvertibleConv1x1

__all__ = ["ActNorm", "AffineCoupling", "BatchNorm", "ChannelCoupling", "DiagonalScale", "FlowStep", "InvertibleConv1x1", "LogitTransform", "MaskedAffineCoupling", "MaskedAutoregressive", "Reverse", "SplineCoupling", "broadcast_like", "channel_mask", "checkerboard_mask", "spline_from_params", "squeeze2x2", "unsqueeze2x2"]
