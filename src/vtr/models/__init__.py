from .dual_encoder import DualEncoder
from .text_encoder import TextEncoder, TextEncoderOutput
from .video_encoder import SpaceTimeViT, VideoEncoderOutput

__all__ = ["DualEncoder", "SpaceTimeViT", "TextEncoder", "TextEncoderOutput", "VideoEncoderOutput"]
