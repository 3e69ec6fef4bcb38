"""Environments: built-in games, adapters for Gymnasium pixel envs, episode datasets and their collection."""

from .collect import POLICIES, CollectResult, collect, make_policy
from .dataset import DatasetError, EpisodeDataset, EpisodeInfo
from .dataset_writer import DatasetWriter, repair_dataset
from .episode_buffer import EpisodeBuffer
from .games import register_games
from .keymaps import noop_action_for
from .make import builtin_ids, env_render_fps, make_env
from .spaces import space_from_json, space_to_json

register_games()

__all__ = [
    "POLICIES", "CollectResult", "DatasetError", "DatasetWriter", "EpisodeBuffer", "EpisodeDataset", "EpisodeInfo",
    "builtin_ids", "collect", "env_render_fps", "make_env", "make_policy", "noop_action_for", "register_games",
    "repair_dataset", "space_from_json", "space_to_json",
]
