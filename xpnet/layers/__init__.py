"""Layers and losses, each with an explicit forward and backward written against the array API."""

from . import init
from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, Parameter, Signature, grad_enabled, no_grad, trains
from .conv import Conv2d
from .conv import Conv1d, Conv3d  # issue 11: convolution
from .conv_lazy import LazyConv1d, LazyConv2d, LazyConv3d, LazyConvTranspose1d, LazyConvTranspose2d, LazyConvTranspose3d
from .conv_transpose import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, Loss, MSELoss
from .losses import (BCELoss, HingeEmbeddingLoss, HuberLoss, KLDivLoss, L1Loss, MultiLabelMarginLoss,  # issue 11
                     MultiLabelSoftMarginLoss, MultiMarginLoss, NLLLoss, PoissonNLLLoss, SmoothL1Loss, SoftMarginLoss)
from .losses import (CTCLoss, CosineEmbeddingLoss, GaussianNLLLoss, MarginRankingLoss,  # issue 11: multi-input losses
                     TripletMarginLoss)
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .normalization import (BatchNorm3d, GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,  # issue 11: normalization
                            LocalResponseNorm, RMSNorm)
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool3d, AdaptiveMaxPool1d, AdaptiveMaxPool2d,  # issue 11: pooling
                      AdaptiveMaxPool3d, AvgPool1d, AvgPool3d, FractionalMaxPool2d, FractionalMaxPool3d, LPPool1d,
                      LPPool2d, LPPool3d, MaxPool1d, MaxPool3d)
from .reshape import Flatten, Reshape, Unflatten
from .activations_elu import CELU, ELU, SELU  # issue 11: activations
from .activations_glu import GLU
from .activations_piecewise import Hardshrink, Hardsigmoid, Hardswish, Hardtanh, ReLU6, Softshrink, Threshold
from .activations_smooth import GELU, LogSigmoid, Mish, SiLU, Softplus, Softsign, Tanhshrink
from .activations_softmax import LogSoftmax, Softmax2d, Softmin
from .prelu import PReLU
from .bilinear import Bilinear  # issue 11: padding and the others
from .distance import CosineSimilarity, PairwiseDistance
from .dropout_channels import AlphaDropout, Dropout1d, Dropout2d, Dropout3d, FeatureAlphaDropout
from .padding import (CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d, ConstantPad2d, ConstantPad3d,
                      ReflectionPad1d, ReflectionPad2d, ReflectionPad3d, ReplicationPad1d, ReplicationPad2d,
                      ReplicationPad3d, ZeroPad1d, ZeroPad2d, ZeroPad3d)
from .pixel_shuffle import PixelShuffle, PixelUnshuffle
from .upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from .attention import MultiheadAttention, scaled_dot_product_attention  # issue 12: attention
from .transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,  # issue 12: transformers
                          TransformerEncoder, TransformerEncoderLayer)
from .recurrent import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell  # issue 12: recurrent
from .losses import LinearCrossEntropyLoss  # issue 11: LinearCrossEntropyLoss

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Conv2d",
    "CrossEntropyLoss", "Dropout", "Embedding", "Flatten", "Identity", "Layer", "LayerNorm", "LeakyReLU",
    "Linear", "Loss", "MSELoss", "MaxPool2d", "Parameter", "ReLU", "Reshape", "Sigmoid", "Signature", "Softmax", "Tanh",
    "Unflatten", "grad_enabled", "init", "no_grad", "trains",
]
__all__ += ["BCELoss", "HingeEmbeddingLoss", "HuberLoss", "KLDivLoss", "L1Loss", "MultiLabelMarginLoss",
            "MultiLabelSoftMarginLoss", "MultiMarginLoss", "NLLLoss", "PoissonNLLLoss", "SmoothL1Loss", "SoftMarginLoss"]
__all__ += ["AlphaDropout", "Bilinear", "CircularPad1d", "CircularPad2d", "CircularPad3d", "ConstantPad1d",  # issue 11: padding and the others
            "ConstantPad2d", "ConstantPad3d", "CosineSimilarity", "Dropout1d", "Dropout2d", "Dropout3d",
            "FeatureAlphaDropout", "PairwiseDistance", "PixelShuffle", "PixelUnshuffle", "ReflectionPad1d",
            "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d",
            "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d"]
__all__ += ["AdaptiveAvgPool1d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",  # issue 11: pooling
            "AdaptiveMaxPool3d", "AvgPool1d", "AvgPool3d", "FractionalMaxPool2d", "FractionalMaxPool3d", "LPPool1d",
            "LPPool2d", "LPPool3d", "MaxPool1d", "MaxPool3d"]
__all__ += ["BatchNorm3d", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",  # issue 11: normalization
            "LocalResponseNorm", "RMSNorm"]
__all__ += ["CELU", "ELU", "GELU", "GLU", "Hardshrink", "Hardsigmoid", "Hardswish", "Hardtanh",  # issue 11: activations
            "LogSigmoid", "LogSoftmax", "Mish", "PReLU", "ReLU6", "SELU", "SiLU", "Softmax2d", "Softmin", "Softplus",
            "Softshrink", "Softsign", "Tanhshrink", "Threshold"]
__all__ += ["Conv1d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "LazyConv1d",  # issue 11: convolution
            "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d", "LazyConvTranspose3d"]
__all__ += ["CTCLoss", "CosineEmbeddingLoss", "GaussianNLLLoss", "MarginRankingLoss",  # issue 11: multi-input losses
            "TripletMarginLoss"]
__all__ += ["MultiheadAttention", "scaled_dot_product_attention"]  # issue 12: attention
__all__ += ["Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",  # issue 12: transformers
            "TransformerEncoderLayer"]
__all__ += ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell"]  # issue 12: recurrent
__all__ += ["LinearCrossEntropyLoss"]  # issue 11: LinearCrossEntropyLoss
