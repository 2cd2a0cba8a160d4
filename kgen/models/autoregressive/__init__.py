"""Fully visible belief nets: exact likelihoods by the chain rule of probability."""

from kgen.models.autoregressive.gated_pixel_cnn import GatedPixelCNN
from kgen.models.autoregressive.made import MADE
from kgen.models.autoregressive.multiscale_pixel_cnn import MultiscalePixelCNN
from kgen.models.autoregressive.nade import NADE
from kgen.models.autoregressive.pixel_cnn import PixelCNN
from kgen.models.autoregressive.pixel_rnn import PixelRNN

__all__ = ["GatedPixelCNN", "MADE", "MultiscalePixelCNN", "NADE", "PixelCNN", "PixelRNN"]
