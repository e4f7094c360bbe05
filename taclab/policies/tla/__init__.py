"""The Tactile-Language-Action model (TLA paper, section IV) on Qwen2-VL; see docs/tla.md.

Nothing heavy is imported here: transformers and peft load when a model is built.
"""

from taclab.policies.tla.model import TLAConfig, TLAModel
from taclab.policies.tla.tiny import build_tokenizer, init_tiny

__all__ = ["TLAConfig", "TLAModel", "build_tokenizer", "init_tiny"]
