"""Configuration: the validated contents of ``config.yml``."""

from regression_model.config.core import (
    Config,
    ConfigError,
    ModelConfig,
    get_config,
    load_config,
)

__all__ = ["Config", "ConfigError", "ModelConfig", "get_config", "load_config"]
